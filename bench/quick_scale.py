"""End-to-end time of the quick scale (`snakemake --config scale=quick`) on this machine.

    python bench/quick_scale.py [--json bench/results/quick_scale.json] [--cores 2]

The quick scale needs CIFAR-10, which cannot be downloaded on every machine; its cost does not depend
on the images, so this writes a CIFAR-shaped stand-in archive (the official layout and sizes: five
training batches and a test batch of 10,000 images each, drawn like the ci scale's
synthetic-cifar10, so the cells train and reach the edge as at ci) and has the runs accept it by its
md5 (`CENTRALFLOWS_CIFAR10_STAND_IN_MD5`; real runs still check the official md5). The workflow then
runs from scratch, with an empty compilation cache as on a new machine, into results/quick and
figures/quick (both removed first), and the wall time, the CPU time of all its processes, the number
of jobs and the machine's load are written to the JSON. Its figures show the stand-in, not CIFAR-10.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import platform
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_stand_in_archive(path: Path, per_batch: int = 10_000) -> str:
    """A cifar-10-python.tar.gz in the official layout of synthetic-cifar10's images; returns its md5."""
    from centralflows.problem.data.cifar10 import OFFICIAL_MEMBER_ORDER
    from centralflows.problem.data.synthetic_cifar import raw_images

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for seed, name in enumerate(OFFICIAL_MEMBER_ORDER):
            x, y = raw_images(per_batch, seed=seed)
            batch = {b"data": x.transpose(0, 3, 1, 2).reshape(per_batch, 3072), b"labels": y.tolist()}
            payload = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(ROOT / "bench/results/quick_scale.json"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--work", default=str(ROOT / "results/quick-bench"), help="archive and cache")
    args = parser.parse_args()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    for old in (ROOT / "results/quick", ROOT / "figures/quick"):
        shutil.rmtree(old, ignore_errors=True)
    md5 = write_stand_in_archive(work / "data" / "cifar-10-python.tar.gz")
    command = [
        sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--resources", f"gpu={args.cores}",
        "--config", "scale=quick", f"data_root={work / 'data'}", f"compilation_cache={work / 'jax-cache'}",
    ]  # fmt: skip
    env = {**os.environ, "CENTRALFLOWS_CIFAR10_STAND_IN_MD5": md5}
    load_before = os.getloadavg()
    start = time.time()
    log = work / "snakemake.log"
    with open(log, "w") as out:
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.time() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log.read_text())
    entry = {
        "command": " ".join(command),
        "returncode": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(children.ru_utime + children.ru_stime, 1),
        "jobs": int(done[-1][1]) if done else None,
        "runs": len(list((ROOT / "results/quick/runs").glob("*/data.hdf5"))),
        "figures": len(list((ROOT / "figures/quick").glob("*.png"))),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    Path(args.json).write_text(json.dumps(entry, indent=2) + "\n")
    print(json.dumps(entry, indent=2))
    if proc.returncode:
        print(f"snakemake failed (exit {proc.returncode}); its log: {log}", file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
