"""Loss criteria and accuracy on network outputs, with masked positions (REFERENCE §3.2)."""

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

CRITERIA = ("mse", "ce")
MASK = -1  # label value of positions that take no part in loss or accuracy


@dataclass(frozen=True)
class Criterion:
    """A loss and its accuracy, both `(f, y) -> scalar`.

    `f` has shape [..., C] (C = 1 for binary problems) and `y` integer labels of shape [...];
    labels equal to MASK are ignored and the mean runs over the remaining examples/positions.
    """

    name: str
    binary: bool
    loss: Callable
    accuracy: Callable


def _rows(f, y):
    """Flattens to one row per example/position: ([m, C], [m], mask [m])."""
    f = f.reshape(-1, f.shape[-1])
    y = y.reshape(-1)
    return f, y, (y != MASK).astype(f.dtype)


def _masked_mean(values, mask):
    return jnp.sum(values * mask) / jnp.sum(mask)


def mse(f, y):
    """½ Σ_classes (f − onehot(y))², averaged over unmasked rows. Note the ½ and the sum over outputs."""
    f, y, mask = _rows(f, y)
    target = jax.nn.one_hot(y, f.shape[-1], dtype=f.dtype)  # masked rows get zeros, then weight 0
    return _masked_mean(0.5 * jnp.sum((f - target) ** 2, axis=-1), mask)


def mse_binary(f, y):
    """½ (f − t)² with targets t = ±1 for labels {1, 0}, averaged over unmasked rows."""
    f, y, mask = _rows(f, y)
    target = (2 * y - 1).astype(f.dtype)
    return _masked_mean(0.5 * (f[:, 0] - target) ** 2, mask)


def ce(f, y):
    """Mean softmax cross-entropy over unmasked rows (PyTorch `F.cross_entropy`)."""
    f, y, mask = _rows(f, y)
    log_p = jax.nn.log_softmax(f, axis=-1)
    picked = jnp.take_along_axis(log_p, jnp.maximum(y, 0)[:, None], axis=-1)[:, 0]
    return _masked_mean(-picked, mask)


def ce_binary(f, y):
    """Mean logistic loss on logits f[:, 0] with labels {0, 1} (`binary_cross_entropy_with_logits`)."""
    f, y, mask = _rows(f, y)
    z = f[:, 0]
    return _masked_mean(jax.nn.softplus(z) - y.astype(f.dtype) * z, mask)


def accuracy(f, y):
    """Fraction of unmasked rows whose argmax output equals the label."""
    f, y, mask = _rows(f, y)
    return _masked_mean((jnp.argmax(f, axis=-1) == y).astype(f.dtype), mask)


def accuracy_binary(f, y):
    """Fraction of unmasked rows with sign(f) matching the label (f > 0 means label 1)."""
    f, y, mask = _rows(f, y)
    return _masked_mean(((f[:, 0] > 0) == (y == 1)).astype(f.dtype), mask)


def get_criterion(name: str, binary: bool = False) -> Criterion:
    """Returns the criterion `name` ("mse" or "ce"), in its binary variant if `binary`.

    Raises:
        ValueError: `name` is not one of CRITERIA (the message lists them).
    """
    if name not in CRITERIA:
        raise ValueError(f"unknown criterion '{name}'; valid names: {', '.join(CRITERIA)}")
    if binary:
        return Criterion(name, True, mse_binary if name == "mse" else ce_binary, accuracy_binary)
    return Criterion(name, False, mse if name == "mse" else ce, accuracy)
