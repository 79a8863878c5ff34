"""Problem: flat parameters, dtypes, metrics and outputs on a small synthetic CIFAR problem."""

import jax
import jax.numpy as jnp
import pytest

from centralflows.problem.build import build_problem

CONFIG = {  # build_problem's arguments
    "data": {"name": "synthetic-cifar10", "n": 8, "n_test": 12},
    "arch": {"name": "mlp", "width": 4},
    "seed": 0,
}


@pytest.mark.slow
def test_problem_functions_and_shapes():
    problem = build_problem(**CONFIG)
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
    problem = build_problem(**CONFIG, dtype=jnp.float64)
    other = build_problem(**{**CONFIG, "seed": 1}, dtype=jnp.float64)
    assert problem.w0.dtype == jnp.float64 and not jnp.allclose(problem.w0, other.w0)
    assert jax.grad(problem.loss_fn)(problem.w0).dtype == jnp.float64


def test_binary_problem_and_sorting_tokens():
    binary = build_problem({**CONFIG["data"], "classes": "binary", "criterion": "ce"}, CONFIG["arch"])
    assert binary.train_outputs(binary.w0).shape == (8, 1)
    with pytest.raises(ValueError, match="needs image inputs"):
        build_problem({"name": "sorting", "n": 4, "n_test": 4}, {"name": "mlp"})


def ghosted(config: dict, size: int) -> dict:
    return {**config, "data": {**config["data"], "ghost_batch_size": size}}


@pytest.mark.parametrize(
    "config",
    [  # 4 classes with a shorter last chunk; a masked sequence task with cross-entropy
        {"data": {"name": "synthetic-cifar10", "n": 20, "n_test": 4}, "arch": {"name": "cnn"}},
        {"data": {"name": "sorting", "n": 30, "n_test": 4, "criterion": "ce"}, "arch": {"name": "lstm"}},
    ],
    ids=["cnn", "lstm-sorting"],
)
def test_ghost_batches_give_the_full_batch_loss_and_derivatives(x64, config):
    from centralflows.engine.derivatives import batched_hvp, third_derivative

    full = build_problem(**config, dtype=jnp.float64)
    ghost = build_problem(**ghosted(config, 7), dtype=jnp.float64)
    w = full.w0 + 0.05 * jax.random.normal(jax.random.PRNGKey(1), full.w0.shape, jnp.float64)
    V = jax.random.normal(jax.random.PRNGKey(2), (full.n_params, 2), jnp.float64)
    assert float(ghost.loss_fn(w)) == pytest.approx(float(full.loss_fn(w)), rel=1e-13)
    for f in (
        lambda p: jax.grad(p.loss_fn)(w),
        lambda p: batched_hvp(p.loss_fn, w, V),
        lambda p: third_derivative(p.loss_fn, w, V[:, 0], V[:, 1]),
    ):
        a, b = f(full), f(ghost)
        assert float(jnp.abs(a - b).max()) <= 1e-12 * float(jnp.abs(a).max())


def test_ghost_batches_bound_the_hvp_memory():
    """XLA's own account of the compiled HVP's scratch memory: ten chunks need a fraction of it."""
    from centralflows.engine.derivatives import batched_hvp

    config = {"data": {"name": "synthetic-cifar10", "n": 400, "n_test": 4}, "arch": {"name": "cnn"}}

    def temp_bytes(problem):
        V = jnp.ones((problem.n_params, 1))
        program = jax.jit(lambda w, V: batched_hvp(problem.loss_fn, w, V)).lower(problem.w0, V).compile()
        return program.memory_analysis().temp_size_in_bytes

    full, ghost = temp_bytes(build_problem(**config)), temp_bytes(build_problem(**ghosted(config, 40)))
    assert ghost < full / 4, (ghost, full)


def test_ghost_batch_size_is_checked():
    from centralflows.runner.config import ConfigError, resolve_config

    with pytest.raises(ConfigError, match="ghost_batch_size"):
        resolve_config({**ghosted(CONFIG, 0), "opt": {"name": "gd", "lr": 0.1}, "steps": 1})
