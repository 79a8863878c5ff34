"""Problem: flat parameters, dtypes, metrics and outputs on a small synthetic CIFAR problem."""

import jax
import jax.numpy as jnp
import pytest

from centralflows.problem.build import build_problem

CONFIG = {
    "data": {"name": "synthetic-cifar10", "n": 8, "n_test": 12},
    "arch": {"name": "mlp", "width": 4},
    "seed": 0,
}


@pytest.mark.slow
def test_problem_functions_and_shapes():
    problem = build_problem(CONFIG)
    assert problem.dataset == "synthetic-cifar10" and problem.arch == "mlp"
    assert problem.n_params == 3072 * 4 + 4 + 4 * 4 + 4 + 4 * 4 + 4
    assert problem.w0.shape == (problem.n_params,) and problem.w0.dtype == jnp.float32
    loss = jax.jit(problem.loss_fn)(problem.w0)
    metrics = problem.train_metrics(problem.w0)
    assert float(loss) == pytest.approx(float(metrics["loss"]))
    assert 0 <= float(problem.test_metrics(problem.w0)["acc"]) <= 1
    assert problem.train_outputs(problem.w0).shape == (8, 4)  # fewer than 10 train examples
    assert problem.test_outputs(problem.w0).shape == (10, 4)


@pytest.mark.slow
def test_seed_changes_init_and_dtype_is_kept(x64):
    problem = build_problem(CONFIG, dtype=jnp.float64)
    other = build_problem({**CONFIG, "seed": 1}, dtype=jnp.float64)
    assert problem.w0.dtype == jnp.float64 and not jnp.allclose(problem.w0, other.w0)
    assert jax.grad(problem.loss_fn)(problem.w0).dtype == jnp.float64


def test_binary_problem_and_sorting_tokens():
    binary = build_problem({**CONFIG, "data": {**CONFIG["data"], "classes": "binary", "criterion": "ce"}})
    assert binary.train_outputs(binary.w0).shape == (8, 1)
    with pytest.raises(ValueError, match="needs image inputs"):
        build_problem({"data": {"name": "sorting", "n": 4, "n_test": 4}, "arch": {"name": "mlp"}})
