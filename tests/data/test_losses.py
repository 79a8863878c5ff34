"""Loss criteria: the ½ and sum over outputs, masks, binary variants, accuracy."""

import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.problem.losses import CRITERIA, get_criterion

F = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [9.0, 9.0, 9.0]])
Y = jnp.array([0, 2, -1])  # the last row is masked


def test_mse_is_half_sum_over_outputs_mean_over_unmasked_rows():
    onehot = np.eye(3)[[0, 2]]
    expected = np.mean(0.5 * ((np.asarray(F[:2]) - onehot) ** 2).sum(1))
    assert float(get_criterion("mse").loss(F, Y)) == pytest.approx(expected)


def test_ce_is_mean_cross_entropy_over_unmasked_rows():
    logp = np.asarray(F[:2]) - np.log(np.exp(np.asarray(F[:2])).sum(1, keepdims=True))
    assert float(get_criterion("ce").loss(F, Y)) == pytest.approx(-np.mean(logp[[0, 1], [0, 2]]), rel=1e-6)


def test_masks_work_on_sequences():
    f = jnp.stack([F, F])  # [batch 2, positions 3, vocab 3]
    y = jnp.stack([Y, jnp.array([-1, -1, 1])])
    rows_f, rows_y = jnp.concatenate([F[:2], F[2:]]), jnp.array([0, 2, 1])
    for name in CRITERIA:
        criterion = get_criterion(name)
        assert float(criterion.loss(f, y)) == pytest.approx(float(criterion.loss(rows_f, rows_y)), rel=1e-6)
    assert float(get_criterion("mse").accuracy(f, y)) == pytest.approx(2 / 3)  # row [9, 9, 9] -> argmax 0


def test_binary_variants():
    f, y = jnp.array([[0.5], [-2.0], [1.0]]), jnp.array([1, 0, -1])
    mse = get_criterion("mse", binary=True)
    assert float(mse.loss(f, y)) == pytest.approx(0.5 * ((0.5 - 1) ** 2 + (-2.0 + 1) ** 2) / 2)
    bce = np.mean([np.log1p(np.exp(-0.5)), np.log1p(np.exp(-2.0))])
    assert float(get_criterion("ce", binary=True).loss(f, y)) == pytest.approx(bce, rel=1e-6)
    assert float(mse.accuracy(f, y)) == 1.0
    assert float(mse.accuracy(-f, y)) == 0.0


def test_unknown_criterion_lists_valid_names():
    with pytest.raises(ValueError, match="unknown criterion 'hinge'; valid names: mse, ce"):
        get_criterion("hinge")
