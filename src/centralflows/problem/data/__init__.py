"""Registry of the datasets; each module has DEFAULTS and load(options) -> Dataset."""

from dataclasses import dataclass

import numpy as np

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.names import module_named

DATASETS = ("cifar10", "synthetic-cifar10", "sorting")
_MODULES = {"synthetic-cifar10": "synthetic_cifar"}  # the module of a name that is not one
# `data` options that say where the data lives and how many examples are evaluated at once, not what a
# run computes: they are left out of a run's identity and a run may resume with other values
NOT_IDENTITY = ("root", "ghost_batch_size")


class DataError(ValueError):
    """A dataset cannot be provided (missing or corrupt archive, no network, bad options)."""


@dataclass(frozen=True)
class Dataset:
    """A full-batch training problem's data, as numpy arrays.

    Attributes:
        name: one of DATASETS; recorded in every output so figures cannot silently use fake data.
        spec: shapes the architecture needs.
        x_train, x_test: float32 images [n, 32, 32, 3] (NHWC) or int32 tokens [n, length].
        y_train, y_test: int32 labels [n] or [n, length]; -1 marks positions without a loss.
        criterion: "mse" or "ce" (see `losses.get_criterion`).
        binary: one output unit with labels {0, 1} (±1 targets for MSE).
    """

    name: str
    spec: DataSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    criterion: str
    binary: bool = False


def shuffled(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of one split permuted by `np.random.default_rng(0).permutation(len(x))`.

    The authors' loader shuffles the train and the test split of every dataset this way, a fresh
    generator for each split (their `DatasetBuilder._shuffle`, REFERENCE §3.1): every `load` calls it
    on its train split, then on its test split.
    """
    perm = np.random.default_rng(0).permutation(len(x))
    return x[perm], y[perm]


def get_dataset(name: str):
    """Returns the module of dataset `name` (it defines `DEFAULTS` and `load(options)`).

    Raises:
        ValueError: `name` is not one of DATASETS (the message lists them).
    """
    return module_named("dataset", name, DATASETS, "centralflows.problem.data", _MODULES)
