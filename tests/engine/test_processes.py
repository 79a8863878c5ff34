"""The processes: SDCP conditions after a central substep, central = stable below the edge, and
discrete GD ≈ gradient flow at a small learning rate."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.compiled import Compiled
from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import make_optimizer
from centralflows.engine.processes import CentralFlow, Discrete, Midpoint, StableFlow
from tests.conftest import tiny_mlp_loss
from tests.engine.helpers import as_problem, cubic_loss

EIG = EigConfig(frequency=1, track_threshold=1.5, initial_k=1, max_k=8, tol=1e-12)


@pytest.mark.parametrize(
    "spectrum", [[2.05], [2.05, 1.99], [2.08, 2.02, 1.97]], ids=["1-critical", "2-critical", "3-critical"]
)
@pytest.mark.slow
def test_one_central_substep_satisfies_the_sdcp(x64, spectrum):
    loss_fn, w0, _ = cubic_loss(spectrum)
    kern = Compiled(as_problem(loss_fn, w0), make_optimizer("gd", 1.0))
    flow = CentralFlow(kern, w0, {"t": jnp.zeros(())}, EIG, nsubsteps=4)
    flow.measure()
    theta, U = flow.eigs.theta, flow.eigs.eigenvectors(1.0)
    k_c = len(spectrum)
    assert int(jnp.sum(theta > 1.95)) == k_c
    dw_dt, _, aux = kern.central_velocity(k_c)(w0, flow.s, theta[:k_c], U[:, :k_c], 0.25)
    X = np.asarray(aux["X"])
    assert np.linalg.eigvalsh(X).min() >= -1e-10
    assert np.trace(X) > 1e-6  # the edge is active: the SDCP is not trivially solved by X = 0
    # one Euler substep, then the exact stability matrix along the same eigenvectors
    w1 = w0 + 0.25 * dw_dt
    H1 = jax.hessian(loss_fn)(w1)
    S = np.asarray(U[:, :k_c].T @ (2 * jnp.eye(w0.shape[0]) - H1) @ U[:, :k_c])
    assert np.linalg.eigvalsh(S).min() >= -1e-8  # α + β[X] ⪰ 0
    assert abs(np.sum(X * S)) <= 1e-8 * (1 + np.abs(S).max())  # complementarity


@pytest.mark.slow
def test_below_the_edge_central_equals_stable_and_X_is_zero(x64):
    loss_fn, w0 = tiny_mlp_loss()
    opt = make_optimizer("gd", 0.05)  # effective sharpness well below 2 on this problem
    kern = Compiled(as_problem(loss_fn, w0), opt)
    s0 = opt.init_state(w0)
    central = CentralFlow(kern, w0, s0, EIG)
    stable = StableFlow(kern, w0, s0, EIG)
    for _ in range(10):
        measured, stable_measured = central.measure(), stable.measure()
        logs, stable_logs = measured.logs, stable_measured.logs
        assert float(logs["effective_hessian_eigs"][0]) < 1.95
        assert logs["flow_aux/X"].shape == (0, 0)
        assert float(logs["predicted_loss"]) == float(logs["train_loss"])
        assert stable_logs["substeps"] == 4
        central.step(measured)
        stable.step(stable_measured)
    np.testing.assert_allclose(central.w, stable.w, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_small_learning_rate_gd_tracks_gradient_flow(x64):
    loss_fn, w0 = tiny_mlp_loss()
    errors = []
    for lr in (0.02, 0.01):
        opt = make_optimizer("gd", lr)
        kern = Compiled(as_problem(loss_fn, w0), opt)
        s0 = opt.init_state(w0)
        disc = Discrete(kern, w0, s0, EigConfig())
        stable = StableFlow(kern, w0, s0, EigConfig())
        for _ in range(int(0.4 / lr)):  # the same flow time 0.4/η·η... one unit of time per step
            disc.step(disc.measure()), stable.step(stable.measure())
        errors.append(float(jnp.linalg.norm(disc.w - stable.w) / jnp.linalg.norm(disc.w - w0)))
    assert errors[0] < 0.02
    assert errors[1] < 0.6 * errors[0]  # the gap shrinks with the learning rate (first order)


def test_midpoint_is_the_second_order_average(x64):
    loss_fn, w0 = tiny_mlp_loss()
    opt = make_optimizer("gd", 0.1)
    kern = Compiled(as_problem(loss_fn, w0), opt)
    s0 = opt.init_state(w0)
    disc, mid = Discrete(kern, w0, s0, EigConfig()), Midpoint(kern, w0, s0, EigConfig())
    ws = []
    for t in range(4):
        disc_measured, mid_measured = disc.measure(), mid.measure()
        ws.append(disc.w)
        if t == 0:
            np.testing.assert_array_equal(mid_measured.point, w0)
        disc.step(disc_measured)
        mid.step(mid_measured)
    ws.append(disc.w)
    np.testing.assert_allclose(
        mid.measure().point, 0.25 * (ws[3] + 2 * ws[4] + (ws[4] - 0.1 * jax.grad(loss_fn)(ws[4])))
    )


@pytest.mark.parametrize("rate", ["step", "authors"])
def test_flow_counter_rate_gives_the_hand_computed_preconditioner(x64, rate):
    """RMSProp with bias correction: the stable flow's P after one step, Euler by hand in numpy."""
    beta2, lr, eps, n = 0.9, 0.1, 1e-3, 4
    A = np.diag([0.5, 0.2, 0.1])  # L = ½ wᵀAw: S_eff stays small, so 4 substeps
    w0 = jnp.asarray([1.0, -2.0, 0.5])
    opt = make_optimizer("rmsprop", lr, beta2=beta2, eps=eps, bias_correction=True, flow_t_rate=rate)
    kern = Compiled(as_problem(lambda w: 0.5 * w @ jnp.asarray(A) @ w, w0), opt)
    flow = StableFlow(kern, w0, opt.init_state(w0), EIG)
    measured = flow.measure()
    assert measured.logs["substeps"] == n
    flow.step(measured)

    def P(t, nu):
        return (np.sqrt(nu / (1 - beta2**t)) + eps) / lr

    w = np.asarray(w0)
    t, nu = 1.0, (1 - beta2) * (A @ w) ** 2  # the flows apply F once at the start
    t_rate = 1 / beta2 if rate == "authors" else 1.0
    for _ in range(n):
        g = A @ w
        w, t, nu = w - g / P(t, nu) / n, t + t_rate / n, nu + (1 - beta2) / beta2 * (g**2 - nu) / n
    assert float(flow.s["t"]) == pytest.approx(1 + t_rate, abs=1e-12)
    np.testing.assert_allclose(np.asarray(opt.precond(flow.s)), P(t, nu), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(flow.w), w, rtol=1e-12)


def test_a_binding_max_k_cap_is_logged_and_warned_once(x64, caplog):
    loss_fn, w0, _ = cubic_loss([2.3, 2.2, 2.1, 1.2])  # three effective eigenvalues above 1.5 at η = 1
    kern = Compiled(as_problem(loss_fn, w0), make_optimizer("gd", 1.0))
    s0 = {"t": jnp.zeros(())}
    capped = Discrete(kern, w0, s0, EigConfig(frequency=1, max_k=2, tol=1e-12))
    roomy = Discrete(kern, w0, s0, EigConfig(frequency=1, max_k=8, tol=1e-12))
    for _ in range(2):
        logs, free = capped.measure().logs, roomy.measure().logs
        assert logs["eig_logs/k"] == 2 and logs["eig_logs/k_capped"] == 1.0
        assert free["eig_logs/k"] == 4 and free["eig_logs/k_capped"] == 0.0  # grew past 1.5, then stopped
    assert caplog.text.count("discrete: 2 = eig.max_k eigenpairs") == 1 and "eig_logs/k_capped" in caplog.text
    assert capped.eigs.capped_steps == 2 and capped.state_dict()["eigs"]["capped_steps"] == 2


@pytest.mark.slow
def test_secant_change_of_P_tends_to_the_authors_tangent_as_the_substep_shrinks(x64):
    loss_fn, w0 = tiny_mlp_loss()
    opt = make_optimizer("rmsprop", 0.01, beta2=0.9, eps=1e-8, bias_correction=True)
    kern = Compiled(as_problem(loss_fn, w0), opt)
    flow = CentralFlow(kern, w0, opt.init_state(w0), EIG)
    P = flow.measure().carry.P
    theta, U = flow.eigs.theta[:1], flow.eigs.eigenvectors(P)[:, :1]

    def dP(secant, dt):
        _, _, aux = kern.central_velocity(1, True, secant)(w0, flow.s, theta, U, dt)
        return float(np.asarray(aux["dP_dt_stable"]).ravel()[0])

    gaps = [abs(dP(True, dt) - dP(False, dt)) for dt in (1e-2, 1e-3)]
    assert gaps[0] > 0  # early in a run nu moves fast: the secant differs from the tangent ...
    assert gaps[1] == pytest.approx(gaps[0] / 10, rel=0.05)  # ... by O(dt)


def test_rotated_third_derivatives_equal_the_direct_ones_in_the_same_span(x64):
    """central.third_every step: at one point, ∇(u_iᵀHu_j) for U = U0 R (R orthogonal, P-orthonormal
    bases) is the rotation of U0's pairs exactly; after a small move of w the error is first order."""
    from centralflows.engine.central import rotate_pairs
    from centralflows.engine.derivatives import third_derivative_pairs

    loss_fn, w = tiny_mlp_loss()
    d, k = w.shape[0], 3
    P = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, d))
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((d, k)))[0]
    U0 = jnp.asarray(Q) / jnp.sqrt(P)[:, None]  # U0ᵀ P U0 = I
    R = jnp.asarray(np.linalg.qr(np.random.default_rng(2).standard_normal((k, k)))[0])
    U = U0 @ R
    gradH0 = third_derivative_pairs(loss_fn, w, U0)
    direct = third_derivative_pairs(loss_fn, w, U)
    np.testing.assert_allclose(rotate_pairs(gradH0, U0, U, P), direct, atol=1e-12 * np.abs(direct).max())
    errors = []
    for eps in (1e-2, 1e-3):
        w1 = w + eps * jax.random.normal(jax.random.PRNGKey(0), w.shape, w.dtype)
        exact = third_derivative_pairs(loss_fn, w1, U)
        errors.append(float(jnp.abs(rotate_pairs(gradH0, U0, U, P) - exact).max()))
    assert 5 < errors[0] / errors[1] < 20  # O(Δw)


SIDE_BY_SIDE_EIG = EigConfig(frequency=1, track_threshold=1.5, initial_k=1, max_k=4)


def central_flows_side_by_side(variants: dict, steps: int = 90):
    """Central flows on a small synth problem (GD η = 0.5, float32), one per variant (keyword arguments
    of CentralFlow; `eig` defaults to SIDE_BY_SIDE_EIG), advanced alternately: the flows and their top
    effective eigenvalue at every step."""
    from tests.engine.helpers import small_synth

    loss_fn, w0 = small_synth(dtype=jnp.float32)
    kern = Compiled(as_problem(loss_fn, w0), make_optimizer("gd", 0.5))
    flows = {
        m: CentralFlow(kern, w0, {"t": jnp.zeros(())}, **{"eig": SIDE_BY_SIDE_EIG, **kw})
        for m, kw in variants.items()
    }
    tops = {m: [] for m in flows}
    for _ in range(steps):
        for m, flow in flows.items():
            measured = flow.measure()
            tops[m].append(float(measured.logs["effective_hessian_eigs"][0]))
            flow.step(measured)
    return flows, tops


@pytest.mark.slow
def test_third_derivatives_once_per_step_cost_and_track_the_edge():
    """central.third_every step and extrapolate compute the third derivatives once per step (not per
    substep) and the flow stays on the edge as with the authors' per-substep vectors; moving the carried
    vectors along their change since the last step keeps the flow closer to the authors'."""
    flows, tops = central_flows_side_by_side(
        {m: dict(third_every=m) for m in ("substep", "step", "extrapolate")}
    )
    assert max(tops["substep"]) > 1.99  # the flow reached the edge
    onset = int(np.argmax(np.array(tops["substep"]) > 1.99))
    for m in flows:
        assert max(tops[m][onset + 2 :]) < 2.002, m
    # at k_c >= 1 the per-substep mode computes 4x as many third-derivative vectors; extrapolate does
    # too in the first steps at the edge, where the pairs' trend is not yet steady (the guard)
    assert flows["step"].third_derivatives * 3 < flows["substep"].third_derivatives
    assert flows["extrapolate"].third_derivatives * 2 < flows["substep"].third_derivatives
    gap = {m: float(jnp.linalg.norm(flows[m].w - flows["substep"].w)) for m in ("step", "extrapolate")}
    assert 0 < gap["extrapolate"] < gap["step"] / 2, gap


@pytest.mark.slow
def test_third_derivatives_are_extrapolated_only_where_the_last_trend_predicted_the_step(monkeypatch):
    """central.third_every extrapolate carries a step's third derivatives along their trend only where
    the trend before predicted the step's first ones within THIRD_TREND_TOLERANCE: with a tolerance no
    trend meets it computes them at every substep, and the flow is the authors' to the bit."""
    import centralflows.engine.processes as processes

    monkeypatch.setattr(processes, "THIRD_TREND_TOLERANCE", 0.0)
    flows, tops = central_flows_side_by_side({m: dict(third_every=m) for m in ("substep", "extrapolate")})
    assert max(tops["substep"]) > 1.99 and flows["substep"].third_derivatives > 0
    assert flows["extrapolate"].third_derivatives == flows["substep"].third_derivatives
    assert bool(jnp.array_equal(flows["extrapolate"].w, flows["substep"].w))
    assert 0 < flows["extrapolate"].third_miss < 1  # measured, and the trend was near


@pytest.mark.slow
def test_extrapolated_span_between_solves_costs_quotients_and_tracks_like_full_solves():
    """eig.between_solves extrapolate (the last solve's span moved along its trend, then Rayleigh-Ritz)
    costs k HVPs per substep like the authors' quotients, yet keeps the central flow as close to the flow
    with a full solve at every substep as the LOBPCG iteration does; the quotients lag."""
    variants = {  # the third derivatives the authors' way, at every substep: only the eigenpairs differ
        m: dict(eig=dataclasses.replace(SIDE_BY_SIDE_EIG, between_solves=m), third_every="substep")
        for m in ("lobpcg", "quotients", "extrapolate")
    }
    # the reference: a full solve at every substep
    variants["full"] = dict(frequency_in_substeps=True, third_every="substep")
    flows, tops = central_flows_side_by_side(variants)
    onset = int(np.argmax(np.array(tops["full"]) > 1.99))
    assert 0 < onset < 80
    top_excess = {m: max(t[onset + 2 :]) - 2 for m, t in tops.items()}
    gap = {m: float(jnp.linalg.norm(flows[m].w - flows["full"].w)) for m in flows}
    assert top_excess["quotients"] > 1e-4 and gap["quotients"] > 1e-4  # the quotients lag
    for m in ("lobpcg", "extrapolate"):
        assert top_excess[m] < 3e-5 and gap[m] < gap["quotients"] / 10, (m, top_excess, gap)
    # fewer HVPs in all, full solves included (0.905x on an AVX2 CPU: the guard's choices move with rounding)
    assert flows["extrapolate"].eigs.hvps < 0.95 * flows["lobpcg"].eigs.hvps
