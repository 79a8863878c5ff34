"""Eigen-tracking against a dense eigendecomposition of P^{-1/2} H P^{-1/2}."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.eigs import EigConfig, EigTracker, lobpcg, run_lobpcg
from tests.conftest import tiny_mlp_loss


def dense_effective(loss_fn, w, P):
    H = np.asarray(jax.hessian(loss_fn)(w))
    p = np.asarray(P) ** -0.5
    return np.linalg.eigh(p[:, None] * H * p[None, :])


@pytest.mark.slow
def test_tracker_matches_dense_eigh_and_grows_k(x64):
    loss_fn, w = tiny_mlp_loss()
    d = w.shape[0]
    P = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, d))
    evals, evecs = dense_effective(loss_fn, w, P)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    threshold = 0.5 * (evals[3] + evals[4])  # exactly 4 eigenvalues above it
    cfg = EigConfig(frequency=1, track_threshold=threshold, initial_k=1, max_k=10, tol=1e-12)
    tracker = EigTracker(loss_fn, cfg, d, jnp.float64)
    theta, U = tracker.update(w, P)
    assert tracker.k == 5  # grown while the smallest tracked one was above the threshold
    np.testing.assert_allclose(theta, evals[:5], rtol=1e-9)
    # U = P^{-1/2} V is P-orthonormal and spans the same directions as the dense eigenvectors
    np.testing.assert_allclose(U.T @ (P[:, None] * U), np.eye(5), atol=1e-10)
    V = np.sqrt(np.asarray(P))[:, None] * np.asarray(U)
    np.testing.assert_allclose(np.abs(np.sum(V * evecs[:, :5], axis=0)), 1.0, atol=1e-8)
    assert tracker.hvps > 0


@pytest.mark.slow
@pytest.mark.parametrize("between_solves", ["quotients", "lobpcg"])
def test_cheap_updates_between_full_solves_and_sign_alignment(x64, between_solves):
    loss_fn, w = tiny_mlp_loss()
    d = w.shape[0]
    cfg = EigConfig(frequency=3, track_threshold=None, initial_k=2, tol=1e-12, between_solves=between_solves)
    tracker = EigTracker(loss_fn, cfg, d, jnp.float64)
    P = jnp.ones(d)
    theta0, U0 = tracker.update(w, P)
    hvps = tracker.hvps
    w2 = w + 1e-3 * jax.random.normal(jax.random.PRNGKey(0), w.shape, w.dtype)
    theta1, U1 = tracker.update(w2, P)  # the cheap update
    H2 = np.asarray(jax.hessian(loss_fn)(w2))
    U0, U1 = np.asarray(U0), np.asarray(U1)
    quotients = np.sort(np.diag(U0.T @ H2 @ U0))[::-1]
    dense = dense_effective(loss_fn, w2, P)[0][::-1][:2]
    if between_solves == "quotients":  # the authors': the same vectors, their Rayleigh quotients (k HVPs)
        assert tracker.hvps - hvps == 2
        np.testing.assert_array_equal(U1, U0)
        np.testing.assert_allclose(theta1, quotients, rtol=1e-10)
        np.testing.assert_allclose(theta1, dense, rtol=1e-3)  # first-order accurate
    else:  # one LOBPCG iteration from U0 (2k HVPs): Ritz pairs of span(U0, residuals): 5-15x closer here
        assert tracker.hvps - hvps == 4
        np.testing.assert_allclose(U1.T @ H2 @ U1, np.diag(theta1), atol=1e-10)
        assert np.all(np.sum(U1 * U0, axis=0) > 0)  # signs aligned to the cached vectors
        assert np.all(np.abs(theta1 - dense) < 0.25 * np.abs(quotients - dense))
    tracker.update(w2, P)
    theta3, U3 = tracker.update(w2, P)  # the 4th call is a full solve again
    assert tracker.last_full
    np.testing.assert_allclose(theta3, dense, rtol=1e-9)
    assert np.all(np.sum(np.asarray(U3) * U0, axis=0) > 0)  # signs follow the previous vectors


def test_lobpcg_on_a_diagonal_operator(x64):
    d, k = 200, 3
    diag = jnp.linspace(1.0, 10.0, d)
    X0 = jax.random.normal(jax.random.PRNGKey(0), (d, k), jnp.float64)
    theta, X, iters = lobpcg(lambda V: diag[:, None] * V, X0, max_iter=200, tol=1e-12)
    np.testing.assert_allclose(theta, diag[::-1][:k], rtol=1e-10)
    assert int(iters) < 200


def test_soft_locking_skips_converged_pairs_and_keeps_the_tolerance(x64):
    """eig.lock: once the well-separated top pairs converge, iterations apply the operator to the slow
    last pair only; every pair still meets the tolerance (against the exact spectrum)."""
    d, k, tol = 400, 4, 1e-12
    # three well-separated top eigenvalues and a fourth next to the fifth (slow to converge)
    diag = jnp.concatenate([jnp.array([30.0, 20.0, 12.0, 5.0, 4.9]), jnp.linspace(0.0, 4.0, d - 5)])
    op = jax.jit(lambda rows: rows * diag[None, :])
    X0 = jax.random.normal(jax.random.PRNGKey(0), (k, d), jnp.float64)
    results = {lock: run_lobpcg(op, X0, tol, 500, lock=lock) for lock in (False, True)}
    for lock, (theta, _, iters, _) in results.items():
        np.testing.assert_allclose(theta, diag[:k], rtol=1e-9, err_msg=f"lock={lock}")
        assert iters < 500
    iters_all, products_all = results[False][2:]
    iters_lock, products_lock = results[True][2:]
    assert products_all == k * (1 + iters_all)  # the authors' way: every pair at every iteration
    assert products_lock < 0.6 * products_all, (products_lock, products_all)
    # about as many iterations, mostly on one vector (1.13-1.22x over 4 seeds on an AVX2 CPU: rounding)
    assert iters_lock < 1.5 * iters_all


@pytest.mark.slow
def test_lobpcg_stays_accurate_after_convergence(x64):
    """Converged pairs make the search directions tiny; iterating on must not corrupt them."""
    loss_fn, w = tiny_mlp_loss()
    d = w.shape[0]
    evals, evecs = dense_effective(loss_fn, w, jnp.ones(d))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    X0 = jnp.concatenate(
        [jnp.asarray(evecs[:, :5]), jax.random.normal(jax.random.PRNGKey(1), (d, 1))], axis=1
    )
    matvec = lambda V: jax.vmap(lambda v: jax.jvp(jax.grad(loss_fn), (w,), (v,))[1], 1, 1)(V)
    theta, X, iters = lobpcg(matvec, X0, max_iter=100, tol=0.0)  # tol 0: run all 100 iterations
    assert int(iters) == 100
    np.testing.assert_allclose(theta, evals[:6], rtol=1e-8)


def test_span_extrapolation_only_where_the_trend_predicted_the_last_solve(x64):
    """between_solves extrapolate moves the last solve's span along its trend (k operator applications
    per update) only once the trend of the two solves before predicted the last solve's span: from the
    third solve on while the eigenvectors turn smoothly, not in the step where they jump (a trend across
    the jump would put the eigenvalues off by O(1)), and again two solves after it. A tracker restored
    from its state mid-way (a resumed run) decides the same."""
    d, k = 40, 2
    rng = np.random.default_rng(0)
    pairs = rng.permutation(d).reshape(2, -1)  # the eigenvectors turn in d/2 planes, at rates `rate`
    rate = rng.uniform(-0.01, 0.01, d // 2)
    jump = np.linalg.qr(rng.normal(size=(d, d)))[0]  # then jump by a random orthogonal matrix
    spectrum = np.r_[10.0, 8.0, np.linspace(3, 0.1, d - 2)]
    cfg = EigConfig(frequency=1, track_threshold=None, initial_k=k, tol=1e-12, between_solves="extrapolate")

    def loss_fn(w):  # at w = (0, t, j) its Hessian is H(t, j) ⊕ 0: eigenvectors turning, then jumping
        x, t, j = w[:d], w[d], w[d + 1]
        c, s = jnp.cos(rate * t), jnp.sin(rate * t)
        Q = jnp.eye(d).at[pairs[0], pairs[0]].set(c).at[pairs[1], pairs[1]].set(c)
        Q = Q.at[pairs[0], pairs[1]].set(-s).at[pairs[1], pairs[0]].set(s)
        Q = Q @ (jnp.eye(d) + j * (jump - jnp.eye(d)))  # j is 0 or 1
        return 0.5 * x @ (Q @ (spectrum * (Q.T @ x)))

    def track(resume_at=None):
        tracker = EigTracker(loss_fn, cfg, d + 2, jnp.float64)
        costs, thetas = {}, {}
        for step in range(9):
            for since in (0, 0.25, 0.5, 0.75):  # a full solve, then three updates between solves
                w = jnp.zeros(d + 2).at[d:].set([step + since, step >= 5])
                before = tracker.hvps
                theta, _ = tracker.update(w, 1.0, full=since == 0, since_solve=since or None)
                thetas[step, since] = np.asarray(theta)
                if since:
                    costs.setdefault(step, []).append(tracker.hvps - before)
                if (step, since) == (resume_at, 0):
                    state = jax.tree.map(np.asarray, tracker.state_dict())
                    tracker = EigTracker(loss_fn, cfg, d + 2, jnp.float64)
                    tracker.load_state_dict(state)
        return costs, thetas

    costs, thetas = track()
    extrapolated = [step for step, c in costs.items() if c == [k] * 3]  # the LOBPCG iteration costs 2k
    assert extrapolated == [2, 3, 4, 7, 8], costs
    errors = {key: float(np.max(np.abs(theta - spectrum[:k]))) for key, theta in thetas.items()}
    assert max(errors.values()) < 1e-3, errors
    resumed_costs, resumed_thetas = track(resume_at=3)
    assert resumed_costs == costs
    for key, theta in thetas.items():
        np.testing.assert_array_equal(resumed_thetas[key], theta, err_msg=str(key))


@pytest.mark.parametrize("warm_start", ["last", "two_back"])
def test_warm_start_two_back_on_a_period_2_oscillation(x64, warm_start):
    """Points alternating w ± δu (GD at the edge): a full solve started from the same side's vectors
    (two_back) meets the tolerance at once (k HVPs); the authors' start from the other side's iterates.
    Both converge to the dense eigenpairs, and a restored state repeats the same solves."""
    loss_fn, w = tiny_mlp_loss()
    d = w.shape[0]
    u = jax.random.normal(jax.random.PRNGKey(2), w.shape, w.dtype)
    points = [w + (-1) ** t * 0.05 * u / jnp.linalg.norm(u) for t in range(6)]
    cfg = EigConfig(frequency=1, track_threshold=None, initial_k=2, tol=1e-12, warm_start=warm_start)
    tracker = EigTracker(loss_fn, cfg, d, jnp.float64)
    per_solve = []
    for t, point in enumerate(points):
        hvps = tracker.hvps
        theta, _ = tracker.update(point, jnp.ones(d))
        per_solve.append(tracker.hvps - hvps)
        np.testing.assert_allclose(
            theta, dense_effective(loss_fn, point, jnp.ones(d))[0][::-1][:2], rtol=1e-8
        )
        if t == 3:
            state = tracker.state_dict()
    if warm_start == "two_back":
        assert per_solve[2:] == [2] * 4  # the start block is already converged
    else:
        assert min(per_solve[2:]) > 2
    resumed = EigTracker(loss_fn, cfg, d, jnp.float64)
    resumed.load_state_dict(state)
    for point in points[4:]:
        theta, U = resumed.update(point, jnp.ones(d))
    np.testing.assert_array_equal(theta, tracker.theta)


def test_warm_start_auto_is_two_back_for_the_discrete_iterates_only():
    """And lock auto is on for the processes that read only eigenvalues, off for the central flow; a
    value given wins."""
    from centralflows.engine.compiled import Compiled
    from centralflows.engine.optimizers import make_optimizer
    from centralflows.engine.processes import CentralFlow, Discrete, Midpoint, StableFlow
    from tests.engine.helpers import as_problem

    problem = as_problem(*tiny_mlp_loss(dtype=jnp.float32))
    opt = make_optimizer("gd", 0.05)
    kernels, s = Compiled(problem, opt), opt.init_state(problem.w0)
    eig = EigConfig(frequency=1)
    assert Discrete(kernels, problem.w0, s, eig).eigs.config.warm_start == "two_back"
    assert CentralFlow(kernels, problem.w0, s, eig).eigs.config.warm_start == "last"
    eigenvalues_only = (Discrete, Midpoint, StableFlow)
    locks = {p.name: p(kernels, problem.w0, s, eig).eigs.config.lock for p in eigenvalues_only}
    assert locks == {"discrete": True, "midpoint": True, "stable": True}
    assert CentralFlow(kernels, problem.w0, s, eig).eigs.config.lock is False
    given = EigConfig(frequency=1, lock=False)
    assert Discrete(kernels, problem.w0, s, given).eigs.config.lock is False
