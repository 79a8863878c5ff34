"""The discrete optimizers against optax and an independent NumPy reference; the flows' drift."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from centralflows.engine.optimizers import make_optimizer
from centralflows.runner.cli import parse_args
from centralflows.runner.config import ConfigError
from tests.conftest import tiny_mlp_loss


def run_ours(opt, loss_fn, w, steps):
    tx, s = opt.as_optax(), opt.init_state(w)
    traj = [w]
    for _ in range(steps):
        update, s = tx.update(jax.grad(loss_fn)(w), s)
        w = optax.apply_updates(w, update)
        traj.append(w)
    return jnp.stack(traj)


def run_optax(tx, loss_fn, w, steps):
    s = tx.init(w)
    traj = [w]
    for _ in range(steps):
        update, s = tx.update(jax.grad(loss_fn)(w), s, w)
        w = optax.apply_updates(w, update)
        traj.append(w)
    return jnp.stack(traj)


@pytest.mark.slow
def test_gd_equals_optax_sgd(x64):
    loss_fn, w0 = tiny_mlp_loss()
    ours = run_ours(make_optimizer("gd", 0.05), loss_fn, w0, 50)
    ref = run_optax(optax.sgd(0.05), loss_fn, w0, 50)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("bias_correction", [False, True])
@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_rmsprop_equals_optax_rmsprop(x64, bias_correction, eps):
    loss_fn, w0 = tiny_mlp_loss()
    opt = make_optimizer("rmsprop", 1e-3, beta2=0.95, eps=eps, bias_correction=bias_correction)
    ours = run_ours(opt, loss_fn, w0, 50)
    tx = optax.rmsprop(1e-3, decay=0.95, eps=eps, eps_in_sqrt=False, bias_correction=bias_correction)
    ref = run_optax(tx, loss_fn, w0, 50)
    assert float(jnp.max(jnp.abs(ours[-1] - ours[0]))) > 1e-3  # the run really moved
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("bias_correction", [False, True])
def test_scalar_rmsprop_equals_numpy_reference(x64, bias_correction):
    loss_fn, w0 = tiny_mlp_loss()
    lr, beta2, eps = 0.02, 0.9, 1e-4
    ours = run_ours(make_optimizer("scalar-rmsprop", lr, beta2, eps, bias_correction), loss_fn, w0, 50)
    grad = jax.grad(loss_fn)
    w, nu = np.asarray(w0), 0.0
    for t in range(1, 51):
        g = np.asarray(grad(jnp.asarray(w)))
        nu = beta2 * nu + (1 - beta2) * float(g @ g)
        nu_hat = nu / (1 - beta2**t) if bias_correction else nu
        w = w - lr / (np.sqrt(nu_hat) + eps) * g
    np.testing.assert_allclose(ours[-1], w, rtol=0, atol=1e-10)


def test_flow_drift_is_derived_from_the_update(x64):
    opt = make_optimizer("rmsprop", 1e-3, beta2=0.99)
    s = {"t": jnp.asarray(3.0), "nu": jnp.asarray([1.0, 2.0])}
    g = jnp.asarray([3.0, -1.0])
    drift = opt.dstate_dt(s, g)
    np.testing.assert_allclose(drift["nu"], (1 - 0.99) / 0.99 * (g**2 - s["nu"]))
    assert float(drift["t"]) == 1.0  # the counter runs at one step per unit time
    # the discrete update is exactly ν_t - ν_{t-1} = ((1-β₂)/β₂)(g² - ν_t)
    new = opt.update_state(s, g)
    np.testing.assert_allclose(new["nu"] - s["nu"], (1 - 0.99) / 0.99 * (g**2 - new["nu"]))


def test_schedule_and_errors():
    opt = make_optimizer("gd", lambda t: 0.1 / t)
    assert float(opt.precond({"t": jnp.asarray(2.0)})) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="valid names: gd, scalar_rmsprop, rmsprop"):
        make_optimizer("adam", 0.1)
    with pytest.raises(ValueError, match="beta2"):
        make_optimizer("rmsprop", 0.1, beta2=1.5)


def test_flow_t_rate_is_a_run_config_option(x64):
    argv = ["opt:rmsprop", "--opt.lr", "0.1", "data:synthetic-cifar10", "arch:mlp", "--steps", "3"]
    assert parse_args(argv).opt.flow_t_rate == "step"  # the default: flow time = step count
    assert parse_args([*argv, "--opt.flow_t_rate", "authors"]).opt.flow_t_rate == "authors"
    with pytest.raises(ConfigError, match="'opt.flow_t_rate'.*one of step, authors"):
        parse_args([*argv, "--opt.flow_t_rate", "beta2"])
    s, g = {"t": jnp.asarray(3.0), "nu": jnp.asarray([1.0])}, jnp.asarray([2.0])
    authors = make_optimizer("rmsprop", 1e-3, beta2=0.99, flow_t_rate="authors")
    assert float(authors.dstate_dt(s, g)["t"]) == pytest.approx(1 / 0.99)
    assert float(make_optimizer("gd", 0.1, flow_t_rate="authors").dstate_dt({"t": s["t"]}, g)["t"]) == 1.0
