"""Stationary EMA ν̄, P̄ and P̂ against known answers and dense convex programs; the stationary flow."""

import functools

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.compiled import Compiled
from centralflows.engine.eigs import EigConfig, EigTracker
from centralflows.engine.optimizers import make_optimizer
from centralflows.engine.stationary import (
    StationaryConfig,
    StationaryFlow,
    StationaryProbe,
    StationarySolver,
    frozen_nu_velocity,
    precond_speed,
)
from tests.engine.helpers import as_problem

EIG = EigConfig(frequency=1, track_threshold=1.5, initial_k=1, max_k=8, tol=1e-12)
CFG = StationaryConfig(step=0.5, max_iter=200, tol=1e-8)


def quadratic(H, b):
    Hj, bj = jnp.asarray(H), jnp.asarray(b)
    return lambda w: bj @ w + 0.5 * w @ Hj @ w


def random_problem(d=6, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    return A @ A.T / d + np.diag(rng.uniform(0, 1, d)), 0.3 * rng.standard_normal(d)


def solver_for(loss_fn, d, opt, cfg=CFG):
    kern = Compiled(as_problem(loss_fn, jnp.zeros(d)), opt)
    # all d pairs from the start: one compilation of the (dense) eigen-solve on these tiny problems
    eig = EigConfig.from_dict({**EIG.__dict__, "initial_k": d, "max_k": d})
    return StationarySolver(kern, EigTracker(loss_fn, eig, d, jnp.float64), cfg)


@functools.lru_cache
def _dense_program(H, g, c):
    H, g = np.asarray(H).reshape(len(g), len(g)), np.asarray(g)
    p = cp.Variable(H.shape[0])
    objective = cp.sum(p) + (c * cp.sum(cp.multiply(g**2, cp.inv_pos(p))) if c > 0 else 0)
    cp.Problem(cp.Minimize(objective), [2 * cp.diag(p) - H >> 0, p >= 0]).solve(solver="CVXOPT")
    return p.value


def dense_program(H, g, c):
    """min_{p} Σp + c Σ g²/p  s.t.  2 diag(p) ⪰ H, p ≥ 0 (c = 0: P̂), by CVXPY + CVXOPT (cached)."""
    return _dense_program(tuple(np.ravel(H)), tuple(g), c)


@pytest.mark.slow
def test_minimal_precond_of_a_diagonal_psd_hessian_is_half_of_it(x64):
    # with H diagonal the diagonal constraint does not bind, so P̂ = ½Π₊H = ½H (REFERENCE §1.6)
    h = np.array([3.0, 2.0, 1.0])
    opt = make_optimizer("rmsprop", 0.1)
    sol = solver_for(quadratic(np.diag(h), np.zeros(3)), 3, opt).solve(
        jnp.zeros(3), {"t": jnp.ones(()), "nu": jnp.full(3, 1e-2)}, with_gradient=False
    )
    assert sol.converged
    np.testing.assert_allclose(sol.P, h / 2, rtol=1e-6)


@pytest.mark.slow
def test_minimal_precond_matches_the_dense_sdp(x64):
    H, b = random_problem()
    opt = make_optimizer("rmsprop", 0.1)
    sol = solver_for(quadratic(H, b), 6, opt).solve(
        jnp.zeros(6), {"t": jnp.ones(()), "nu": jnp.full(6, 1e-2)}, with_gradient=False
    )
    ref = dense_program(H, b, 0.0)
    assert sol.converged
    np.testing.assert_allclose(sol.P, ref, rtol=2e-4)  # CVXOPT's default tolerances
    assert float(jnp.sum(sol.P)) <= np.sum(ref) * (1 + 1e-6)


@pytest.mark.slow
def test_stationary_nu_is_a_fixed_point_and_solves_the_convex_program(x64):
    H, b = random_problem()
    eta = 0.5
    opt = make_optimizer("rmsprop", eta, beta2=0.99)
    s = {"t": jnp.ones(()), "nu": jnp.full(6, 1e-2)}
    sol = solver_for(quadratic(H, b), 6, opt).solve(jnp.zeros(6), s)
    assert sol.converged
    np.testing.assert_allclose(sol.P, dense_program(H, b, 1 / eta**2), rtol=2e-4)
    np.testing.assert_allclose(sol.P, jnp.sqrt(sol.nu) / eta, rtol=1e-12)  # P̄ = √ν̄/η
    # dν/dt = 0 at ν̄ for the central flow's ν-dynamics at frozen w, with exact dense eigenpairs
    p = np.asarray(sol.P)
    theta, V = np.linalg.eigh(H / np.sqrt(np.outer(p, p)))
    theta, V = theta[::-1], V[:, ::-1]
    assert theta[0] <= 2 + 1e-6 and theta[0] > 1.95  # the edge binds: ν̄ is not just g²
    k = int(np.sum(theta > 1.95))
    U = jnp.asarray(V[:, :k] / np.sqrt(p)[:, None])
    dnu, X = frozen_nu_velocity(opt, {**s, "nu": sol.nu}, jnp.asarray(b), jnp.asarray(theta[:k]), U, 1.0)
    assert float(jnp.max(jnp.abs(dnu))) <= 1e-6 * float(jnp.max(sol.nu))
    assert float(jnp.trace(X)) > 0
    # P̄ minimises tr P + η⁻²‖g‖²_{P⁻¹}: it pays trace to slow down, so it is slower than P̂ and
    # has a larger trace (REFERENCE §4 claim 15)
    P_hat = dense_program(H, b, 0.0)
    assert float(precond_speed(b, sol.P)) < float(precond_speed(b, P_hat))
    assert float(jnp.sum(sol.P)) > np.sum(P_hat)


@pytest.mark.slow
def test_scalar_rmsprop_stationary_nu_has_its_closed_form(x64):
    # scalar P: H ⪯ 2P ⟺ p ≥ S/2, so ν̄ = max(‖g‖², (ηS/2)²)
    H, b = random_problem()
    eta = 0.5
    S = np.linalg.eigvalsh(H)[-1]
    opt = make_optimizer("scalar_rmsprop", eta)
    sol = solver_for(quadratic(H, b), 6, opt).solve(
        jnp.zeros(6), {"t": jnp.ones(()), "nu": jnp.asarray(1e-2)}
    )
    assert sol.converged
    np.testing.assert_allclose(float(sol.nu), max(b @ b, (eta * S / 2) ** 2), rtol=1e-7)


def rmsprop_on_a_quadratic(eta):
    """The random 6-d quadratic with RMSProp at eta: (H, b, loss, optimizer, kernels, eig config)."""
    H, b = random_problem()
    loss_fn = quadratic(H, b)
    opt = make_optimizer("rmsprop", eta)
    kern = Compiled(as_problem(loss_fn, jnp.zeros(6)), opt)
    return H, b, loss_fn, opt, kern, EigConfig.from_dict({**EIG.__dict__, "initial_k": 6})


@pytest.mark.slow
def test_stationary_flow_steps_with_the_stationary_preconditioner(x64):
    eta = 0.5
    H, b, loss_fn, opt, kern, eig = rmsprop_on_a_quadratic(eta)
    flow = StationaryFlow(kern, jnp.zeros(6), opt.init_state(jnp.zeros(6)), eig, nsubsteps=2, solver=CFG)
    measured = flow.measure()
    logs = measured.logs
    for key in (
        "train_loss",
        "opt.nu_selected_idx",
        "effective_hessian_eigs",
        "predicted_loss",
        "flow_aux/X",
    ):
        assert key in logs
    np.testing.assert_allclose(flow.s["nu"] ** 0.5 / eta, dense_program(H, b, 1 / eta**2), rtol=2e-4)
    # a quadratic has no third derivative: the velocity is -P̄⁻¹∇L
    np.testing.assert_allclose(
        measured.carry, -jax.grad(loss_fn)(flow.w) / (flow.s["nu"] ** 0.5 / eta), rtol=1e-10
    )
    w0 = flow.w
    flow.step(measured)
    assert float(loss_fn(flow.w)) < float(loss_fn(w0))
    assert float(flow.s["t"]) == 2.0


@pytest.mark.slow
def test_probe_logs_stationary_diagnostics_along_the_central_flow(x64):
    # on a quadratic, P̄ and P̂ are the dense convex programs' answers at every point, so the logged
    # speeds and ν̄ are checked against CVXPY; between due steps the probe logs NaN
    eta = 0.5
    H, b, loss_fn, opt, kern, eig = rmsprop_on_a_quadratic(eta)
    w = jnp.asarray(0.1 * np.arange(6.0))
    s = {"t": jnp.ones(()), "nu": jnp.asarray(np.linspace(0.1, 1.0, 6))}
    probe = StationaryProbe(kern, eig, every=2, config=CFG)
    sharpness = np.linalg.eigvalsh(H)[-1]
    logs = probe.measure(w, s, sharpness)
    g = np.asarray(jax.grad(loss_fn)(w))
    P_bar, P_hat = dense_program(H, tuple(g), 1 / eta**2), dense_program(H, tuple(g), 0.0)
    nu_bar = (eta * P_bar) ** 2
    np.testing.assert_allclose(
        logs["stationary/nu_bar_selected_idx"], nu_bar[np.asarray(kern.idx)], rtol=5e-4
    )
    nu = np.asarray(s["nu"])
    cosine = nu @ nu_bar / (np.linalg.norm(nu) * np.linalg.norm(nu_bar))
    np.testing.assert_allclose(float(logs["stationary/nu_cosine"]), cosine, rtol=1e-4)
    np.testing.assert_allclose(float(logs["stationary/speed_p_bar"]), np.sum(g**2 / P_bar), rtol=5e-4)
    np.testing.assert_allclose(float(logs["stationary/speed_p_hat"]), np.sum(g**2 / P_hat), rtol=5e-4)
    np.testing.assert_allclose(float(logs["stationary/speed_baseline"]), 2 * g @ g / sharpness, rtol=1e-12)
    np.testing.assert_allclose(
        float(logs["stationary/speed_current"]), np.sum(g**2 * eta / np.sqrt(nu)), rtol=1e-12
    )
    assert (
        float(logs["stationary/nu_bar_converged"]) == 1.0 and float(logs["stationary/p_hat_converged"]) == 1.0
    )
    skipped = probe.measure(w, s, sharpness)
    assert set(skipped) == set(logs)
    assert all(np.all(np.isnan(np.asarray(v))) for v in skipped.values())
    assert np.shape(skipped["stationary/nu_bar_selected_idx"]) == np.shape(
        logs["stationary/nu_bar_selected_idx"]
    )
    # a restored probe continues from the same warm starts and call count
    fresh = StationaryProbe(kern, eig, every=2, config=CFG)
    fresh.load_state_dict(probe.state_dict())
    again = fresh.measure(w, s, sharpness)
    np.testing.assert_allclose(again["stationary/speed_p_bar"], logs["stationary/speed_p_bar"], rtol=1e-8)
