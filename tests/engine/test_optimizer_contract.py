"""The contract every registered optimizer keeps (optax's habit: one test over all optimizers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.optimizers import Optimizer, make_optimizer
from centralflows.engine.registry import OPTIMIZERS, optimizer_class

D = 7


def _setup(name):
    opt = make_optimizer(name, 0.1, beta2=0.9, eps=1e-3)
    w = jnp.linspace(-1.0, 1.0, D)
    g = jnp.asarray(np.random.default_rng(0).normal(size=D), w.dtype)
    return opt, w, g


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_registry_entry_names_its_class(name):
    cls = optimizer_class(name)
    assert issubclass(cls, Optimizer) and cls.name == name
    assert type(make_optimizer(name, 0.1)) is cls
    assert type(make_optimizer(name.replace("_", "-"), 0.1)) is cls


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_init_state_is_float_leaves_that_F_preserves(name):
    opt, w, g = _setup(name)
    s = opt.init_state(w)
    assert set(s) >= {"t"} and float(s["t"]) == 0
    assert all(leaf.dtype == w.dtype for leaf in s.values())
    new = opt.update_state(s, g)
    assert set(new) == set(s) and all(jnp.shape(new[k]) == jnp.shape(s[k]) for k in s)
    assert float(new["t"]) == 1
    assert ("nu" in s) == opt.has_ema


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_and_optax_transform_agree_under_jit(name):
    opt, w, g = _setup(name)
    s = opt.init_state(w)
    w1, s1 = jax.jit(opt.step)(w, s, g)
    w_eager, s_eager = opt.step(w, s, g)
    np.testing.assert_allclose(w1, w_eager, rtol=1e-6)
    update, s_tx = jax.jit(opt.as_optax().update)(g, opt.as_optax().init(w))
    np.testing.assert_allclose(w + update, w1, rtol=1e-6)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.allclose(a, b)), s_tx, s1))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_dstate_dt_is_derived_from_F(name):
    opt, w, g = _setup(name)
    assert type(opt).dstate_dt is Optimizer.dstate_dt  # never hand-written per optimizer
    s = opt.update_state(opt.init_state(w), g)
    g2 = 0.5 * g[::-1]
    drift, new, rates = opt.dstate_dt(s, g2), opt.update_state(s, g2), opt.state_rates()
    assert set(rates) == set(s)
    for key in s:
        np.testing.assert_allclose(drift[key], rates[key] * (new[key] - s[key]), rtol=1e-6)
    # ν's rate is 1/β₂ (REFERENCE §1.2): the flow and the discrete update written implicitly agree
    if opt.has_ema:
        assert rates["nu"] == pytest.approx(1 / opt.beta2)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_preconditioner_is_positive_and_broadcasts(name):
    opt, w, g = _setup(name)
    s = opt.update_state(opt.init_state(w), g)
    P = opt.precond(s)
    assert jnp.broadcast_shapes(jnp.shape(P), w.shape) == w.shape
    assert (jnp.ndim(P) == 0) == opt.scalar_preconditioner
    assert bool(jnp.all(P > 0))
    logs = opt.log_values(s, jnp.arange(3))
    assert float(logs["opt.t"]) == 1 and float(logs["opt.lr"]) == pytest.approx(0.1)
