"""The sorting task (next-token prediction of a sorted copy), exactly as REFERENCE §3.1."""

import numpy as np

from centralflows.problem.data import DataError, Dataset, shuffled
from centralflows.problem.data.spec import DataSpec

DEFAULTS = {"n": 1000, "n_test": 1000, "vocab_size": 4, "length": 8, "criterion": "mse"}


def load(options: dict) -> Dataset:
    """Generates the task with `np.random.default_rng(0)`, independent of the run seed.

    Each row is `length` random tokens followed by their sorted copy; x = row[:-1], y = row[1:], and
    the first length-1 targets are masked (-1), so the loss covers only the positions that predict
    the sorted output. Train is the first n rows, test the next n_test; each split is then permuted
    as the authors' loader permutes every dataset (`shuffled`, REFERENCE §3.1), train first. The
    full-batch loss is the same up to summation order; the permutation decides which examples are
    logged first and how ghost batches split the data.

    Args:
        options: DEFAULTS with overrides.

    Returns:
        Dataset with int32 tokens x [n, 2*length-1] and labels y [n, 2*length-1].
    """
    n, n_test, vocab, length = (options[k] for k in ("n", "n_test", "vocab_size", "length"))
    if vocab < 2 or length < 2:
        raise DataError(f"sorting needs vocab_size >= 2 and length >= 2, got {vocab} and {length}")
    rng = np.random.default_rng(0)
    inp = rng.integers(0, vocab, size=(n + n_test, length))
    cat = np.concatenate([inp, np.sort(inp, axis=1)], axis=1)
    x, y = cat[:, :-1].astype(np.int32), cat[:, 1:].astype(np.int32)
    y[:, : length - 1] = -1
    spec = DataSpec(kind="sequence", input_shape=(2 * length - 1,), num_outputs=vocab, vocab_size=vocab)
    train, test = shuffled(x[:n], y[:n]), shuffled(x[n:], y[n:])
    return Dataset("sorting", spec, *train, *test, options["criterion"])
