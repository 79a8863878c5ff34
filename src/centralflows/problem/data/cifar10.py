"""CIFAR-10 from the official python archive, subset and preprocessed as REFERENCE §3.1."""

import hashlib
import logging
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from centralflows.problem.data import DataError, Dataset, shuffled
from centralflows.problem.data.spec import DataSpec

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILENAME = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
# For cost measurements only: the md5 of a CIFAR-shaped stand-in archive to accept instead of the
# official one (bench/quick_scale.py); every figure then shows the stand-in's images, not CIFAR-10's.
STAND_IN_MD5_ENV = "CENTRALFLOWS_CIFAR10_STAND_IN_MD5"
MEAN = np.array([0.49139968, 0.48215827, 0.44653124])
STD = np.array([0.24703233, 0.24348505, 0.26158768])

DEFAULTS = {"classes": 4, "n": 1000, "criterion": "mse", "root": "data"}

_TRAIN_BATCHES = frozenset(f"data_batch_{i}" for i in range(1, 6))
# The batches' order in the official archive, which the authors' loader reads in (`read_archive`);
# archives written for tests and cost measurements follow it.
OFFICIAL_MEMBER_ORDER = (
    "data_batch_4",
    "test_batch",
    "data_batch_3",
    "data_batch_2",
    "data_batch_5",
    "data_batch_1",
)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_hint(root) -> str:
    """How to provide the archive under the data root `root` (printed with every data error, and by the
    workflow when the archive is missing and cannot be downloaded)."""
    return (
        f"Download {URL} (md5 {MD5}) and put it at {Path(root) / FILENAME}, or run\n"
        '  python -c "from centralflows.problem.data.cifar10 import download_cifar10; '
        f"download_cifar10('{root}')\""
    )


def download_cifar10(root="data") -> Path:
    """Downloads the official archive into `root`, verifies its md5 and writes it atomically.

    Returns:
        Path of the archive (returned at once when a verified copy is already there).

    Raises:
        DataError: no network, or the downloaded file has the wrong checksum.
    """
    root = Path(root)
    path = root / FILENAME
    if path.exists() and _md5(path) == MD5:
        return path
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=FILENAME, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(URL, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        if _md5(Path(tmp)) != MD5:
            raise DataError(f"the file downloaded from {URL} has the wrong md5.\n{fetch_hint(root)}")
        os.replace(tmp, path)  # atomic: a reader never sees a partial archive
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"could not download CIFAR-10 ({error}).\n{fetch_hint(root)}") from error
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_archive(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads the pickled batches straight from the tar.gz, the train batches in the archive's member order.

    The authors' loader (HuggingFace's cifar10 builder) walks the archive in member order, which in the
    official file is OFFICIAL_MEMBER_ORDER; the "first n/classes of each class" subset therefore comes
    from data_batch_4 (REFERENCE §3.1).

    Returns:
        (x_train, y_train, x_test, y_test): uint8 images [n, 32, 32, 3] (NHWC) and int32 labels [n].

    Raises:
        DataError: a train batch or the test batch is missing from the archive.
    """

    def read(tar, member):
        batch = pickle.load(tar.extractfile(member), encoding="bytes")
        x = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(batch[b"labels"], np.int32)

    train, test, names = [], None, []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:  # one sequential pass, in member order
            name = Path(member.name).name
            if name in _TRAIN_BATCHES:
                train.append(read(tar, member))
                names.append(name)
            elif name == "test_batch":
                test = read(tar, member)
    if sorted(names) != sorted(_TRAIN_BATCHES) or test is None:
        raise DataError(
            f"{path} lacks some of data_batch_1..5 / test_batch (found {', '.join(names) or 'none'}); "
            f"it is not the official archive.\n{fetch_hint(Path(path).parent)}"
        )
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, *test


def image_dataset(name: str, raw: tuple, options: dict) -> Dataset:
    """Subsets, normalises and shuffles raw uint8 NHWC images as the reference code does.

    Train takes, for each class c < classes, the first n/classes examples with label c in the order of
    `raw` (the archive's member order, see `read_archive`), concatenated; test takes every test example
    of those classes. Pixels become (x − 255·MEAN)/(255·STD) per channel. Both splits are then permuted by
    `np.random.default_rng(0).permutation`, train first (`shuffled`). Layout is NHWC; the reference's
    NCHW differs only in layout (the first Linear after a flatten sees its inputs permuted, which i.i.d.
    init ignores).

    Args:
        name: recorded dataset name.
        raw: (x_train, y_train, x_test, y_test) as returned by `read_archive`.
        options: "classes" (int, or "binary" = first two classes with one output), "n", "criterion".
    """
    x_train, y_train, x_test, y_test = raw
    binary = options["classes"] == "binary"
    classes = 2 if binary else int(options["classes"])
    n = options["n"]
    if not 2 <= classes <= 10 or n % classes:
        raise DataError(f"need 2 <= classes <= 10 dividing n; got classes={options['classes']}, n={n}")
    per_class = n // classes

    def split(x, y, count):
        idx = [np.flatnonzero(y == c)[:count] for c in range(classes)]
        if count is not None and min(map(len, idx)) < count:
            raise DataError(f"{name} has fewer than {count} training examples of some class")
        idx = np.concatenate(idx)
        x = ((x[idx] - 255 * MEAN) / (255 * STD)).astype(np.float32)
        return shuffled(x, y[idx].astype(np.int32))

    x_train, y_train = split(x_train, y_train, per_class)
    x_test, y_test = split(x_test, y_test, None)
    spec = DataSpec(kind="image", input_shape=x_train.shape[1:], num_outputs=1 if binary else classes)
    return Dataset(name, spec, x_train, y_train, x_test, y_test, options["criterion"], binary)


def load(options: dict) -> Dataset:
    """Loads the CIFAR-10 subset from `options["root"]/cifar-10-python.tar.gz` (checked against MD5).

    Raises:
        DataError: the archive is missing (the message gives the path, URL and download command)
            or its checksum is wrong.
    """
    root = options["root"]
    path = Path(root) / FILENAME
    if not path.exists():
        raise DataError(f"CIFAR-10 archive not found at {path.resolve()}.\n{fetch_hint(root)}")
    expected = os.environ.get(STAND_IN_MD5_ENV) or MD5
    if _md5(path) != expected:
        raise DataError(
            f"{path} has the wrong md5 (expected {expected}); it may be truncated.\n{fetch_hint(root)}"
        )
    if expected != MD5:
        logging.getLogger(__name__).warning(
            "%s is a stand-in archive accepted by %s, not CIFAR-10: its figures show no real result",
            path,
            STAND_IN_MD5_ENV,
        )
    return image_dataset("cifar10", read_archive(path), options)
