"""The authors' README and REFERENCE §3.8 command lines run verbatim through `python -m centralflows`."""

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile

import h5py
import numpy as np
import pytest

from centralflows.runner.allocator import MALLOC_ENV

CIFAR_GD = "opt:gd data:cifar10 arch:mlp --data.classes=4 --data.n=1000 --data.criterion=mse --opt.lr=0.02"
# (command line as written, with --steps made small; output folder; steps expected in data.hdf5)
RECIPES = [
    (f"{CIFAR_GD} --runs discrete --steps=1000", None, [0, 1]),
    (f"{CIFAR_GD} --runs discrete --steps=2000 --eig.frequency=1 --eig.track-threshold 1.75 "
     "--eig.initial-k 4", None, [0, 1]),
    (f"{CIFAR_GD} --runs discrete central stable midpoint --steps=1000 --eig.frequency=1", None, [0, 1]),
    # --steps counts after the warm start: the authors' 500 rows from step 5 are steps 5..504
    ("opt:rmsprop data:cifar10 arch:mlp --data.classes=4 --data.n=1000 --data.criterion=mse --opt.lr=2e-5 "
     "--opt.beta2=0.99 --opt.eps=1e-7 --opt.bias-correction --runs discrete central --steps=500 "
     "--eig.frequency=1 --warm-start 5 --eig.track-threshold 1.75", None, [5, 6]),
    ("opt:scalar-rmsprop data:sorting arch:lstm --opt.lr 0.01 --opt.beta2 0.99 --opt.bias-correction "
     "--data.criterion ce --data.n 1000 --data.vocab-size 4 --data.length 8 --arch.hidden-dim 16 "
     "--arch.embd-dim 8 --runs discrete midpoint --eig.frequency 1 --discrete.eig.frequency -1 "
     "--steps 50 --device cpu --eig.solver lobpcg --seed 0 --expid sorting-lstm", "sorting-lstm", [0, 1]),
]  # fmt: skip
SMALL_STEPS = {"--steps=1000": "--steps=2", "--steps=2000": "--steps=2", "--steps=500": "--steps=2",
               "--steps 50": "--steps 2"}  # fmt: skip


# the official archive's member order
MEMBERS = "data_batch_4 test_batch data_batch_3 data_batch_2 data_batch_5 data_batch_1".split()


def write_archive(path, per_batch=220):
    """An archive in the official layout whose first 4 classes hold > 250 training images each."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for name in MEMBERS:
            labels = [int(v) for v in np.arange(per_batch) % 4]
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            payload = pickle.dumps({b"data": data, b"labels": labels})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipes")
    (root / "data").mkdir()
    write_archive(root / "data" / "cifar-10-python.tar.gz")
    return root


def run_module(argv, cwd, env=None):
    """`python -m centralflows ARGV` with the CIFAR checksum set to the test archive's."""
    md5 = hashlib.md5((cwd / "data" / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    code = (
        f"import runpy, sys; import centralflows.problem.data.cifar10 as c; c.MD5 = {md5!r}; "
        f"sys.argv = ['centralflows', *{list(argv)!r}]; runpy.run_module('centralflows', run_name='__main__')"
    )
    # with the allocator settings already set, `python -m centralflows` does not restart itself (which
    # would drop the patched checksum): runner.allocator
    env = {**os.environ, **MALLOC_ENV, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=900)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("line, expid, steps", RECIPES)
def test_authors_recipe_runs_verbatim(line, expid, steps, workdir, tmp_path):
    for long, short in SMALL_STEPS.items():
        line = line.replace(long, short)
    (tmp_path / "data").symlink_to(workdir / "data")  # each recipe in its own folder: results/runs/...
    proc = run_module(line.split(), tmp_path, {"EXPERIMENT_DIR": str(tmp_path / "exp")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = proc.stdout.splitlines()[0].removeprefix("Saving data to: ")
    if expid:
        assert saved == str(tmp_path / "exp" / expid / "data.hdf5")
    with h5py.File(tmp_path / saved, "r") as f:
        assert f.attrs["status"] == "completed"
        assert list(f["step"][:]) == steps
        assert np.all(np.isfinite(f["discrete/train_loss"][:]))
