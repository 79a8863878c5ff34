"""The SDCP solver: KKT conditions and agreement with cvxpy, edge cases, the weight-2 off-diagonal
metric, jit/vmap and float32."""

import math

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from centralflows.engine.sdcp import (
    beta_matrix,
    beta_tensor,
    project_beta,
    sdcp_residuals,
    smat,
    solve_sdcp,
    solve_sdcp_with_info,
    svec,
)

KKT_TOL = 1e-8


# ---- an independent numpy reference of the preprocessing and of the QP (cvxpy) ----


def np_svec_basis(k):
    """E[q] = smat(e_q): the orthonormal basis of 𝕊^k behind svec (upper triangle, row-major)."""
    basis = []
    for i in range(k):
        for j in range(i, k):
            E = np.zeros((k, k))
            E[i, j] = E[j, i] = 1.0 if i == j else 1 / math.sqrt(2)
            basis.append(E)
    return np.array(basis)


def np_preprocess(beta):
    """B_pq = ⟨E_p, β[E_q]⟩ in the orthonormal basis, symmetrised and clipped at 0 (as the authors)."""
    E = np_svec_basis(beta.shape[0])
    B = np.einsum("pij,ijkl,qkl->pq", E, beta, E)
    lam, Q = np.linalg.eigh((B + B.T) / 2)
    return (Q * np.maximum(lam, 0)) @ Q.T


def cvxpy_solve(alpha, beta):
    """min_{X ⪰ 0} ½ svec(X)ᵀ B svec(X) + ⟨α, X⟩ with B the preprocessed β, by CLARABEL.

    Returns (X, B, objective). Tighter tolerances than 1e-10 end as "optimal_inaccurate".
    """
    k = alpha.shape[0]
    B = np_preprocess(beta)
    E = np_svec_basis(k)
    X = cp.Variable((k, k), PSD=True)
    x = cp.hstack([cp.sum(cp.multiply(E[q], X)) for q in range(len(E))])
    problem = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(B)) + cp.sum(cp.multiply(alpha, X))))
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, max_iter=500)
    assert problem.status in ("optimal", "optimal_inaccurate"), problem.status
    return np.asarray(X.value), B


def qp_objective(alpha, B, X):
    x = np.einsum("qij,ij->q", np_svec_basis(alpha.shape[0]), X)
    return 0.5 * x @ B @ x + np.sum(alpha * X), B @ x


# ---- random instances ----


def random_psd_matrix(rng, m, rank=None):
    G = rng.standard_normal((m, rank or m + 3))
    return G @ G.T / G.shape[1]


def instance(rng, k, kind):
    """(α, β) of one of the families below, as numpy float64."""
    m = k * (k + 1) // 2
    if kind == "generic":  # α indefinite, β PSD of full rank
        A = rng.standard_normal((k, k))
        return (A + A.T) / 2 - 0.3 * np.eye(k), beta_np(random_psd_matrix(rng, m))
    if kind == "rank-deficient":  # some eigen-directions of α are stable, so rank X < k
        Q = np.linalg.qr(rng.standard_normal((k, k)))[0]
        d = rng.uniform(0.2, 1.0, k) * np.where(np.arange(k) < max(1, k // 2), -1, 1)
        return (Q * d) @ Q.T, beta_np(random_psd_matrix(rng, m))
    if kind == "gd-gram":  # the GD central flow: β_ijkl = c⟨∇H_ij, ∇H_kl⟩, α = diag(2 - λ) + dt·(...)
        d, dt = 40, 0.25
        g = rng.standard_normal((k, k, d))
        g = (g + g.transpose(1, 0, 2)) / 2
        lam = rng.uniform(1.95, 2.1, k)
        A = rng.standard_normal((k, k))
        alpha = np.diag(2 - lam) + 0.02 * dt * (A + A.T)
        return alpha, 0.5 * dt * np.einsum("ijx,klx->ijkl", g, g) / d
    if kind in ("singular-gram", "indefinite"):
        if kind == "singular-gram":  # β of rank < m: X may not be unique, β[X] is
            B = random_psd_matrix(rng, m, rank=max(1, m // 2))
        else:  # round-off-like negative eigenvalues (clipped to 0) and a non-self-adjoint part (RMSProp)
            lam, Q = np.linalg.eigh(random_psd_matrix(rng, m))
            lam[: m // 3] = -1e-9 * rng.uniform(size=m // 3)
            C = 0.05 * rng.standard_normal((m, m))
            B = (Q * lam) @ Q.T + C - C.T
        beta = beta_np(B)
        # α = P + β₊[Y] with P ⪰ 0 (β₊ the preprocessed β) keeps the QP bounded:
        # ⟨α, D⟩ = ⟨P, D⟩ ≥ 0 for every PSD D with β₊[D] = 0
        A, Y = rng.standard_normal((k, k)), rng.standard_normal((k, k))
        bY = np.einsum("ijkl,kl->ij", beta_np(np_preprocess(beta)), Y + Y.T) / 2
        return A @ A.T / k + (bY + bY.T) / 2, beta
    raise ValueError(kind)


def beta_np(B):
    """A 4-tensor whose operator has matrix B in svec coordinates (β_ijkl not symmetric in general)."""
    return np.asarray(beta_tensor(jnp.asarray(B)))


KINDS = ["generic", "rank-deficient", "gd-gram", "singular-gram", "indefinite"]


@pytest.mark.slow
def test_svec_is_an_isometry_and_beta_matrix_matches_the_contraction(x64):
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 5):
        X, Y = (rng.standard_normal((k, k)) for _ in range(2))
        X, Y = X + X.T, Y + Y.T
        np.testing.assert_allclose(svec(jnp.asarray(X)) @ svec(jnp.asarray(Y)), np.sum(X * Y), rtol=1e-13)
        np.testing.assert_allclose(smat(svec(jnp.asarray(X))), X, rtol=1e-14)
        beta = rng.standard_normal((k, k, k, k))
        bX = np.einsum("ijkl,kl->ij", beta, X)  # the full contraction: weight 2 on off-diagonal pairs
        B = np.asarray(beta_matrix(jnp.asarray(beta)))
        np.testing.assert_allclose(B @ svec(jnp.asarray(X)), svec(jnp.asarray((bX + bX.T) / 2)), atol=1e-12)
        np.testing.assert_allclose(
            B, np.einsum("pij,ijkl,qkl->pq", *(np_svec_basis(k), beta, np_svec_basis(k)))
        )


@pytest.mark.slow
def test_agrees_with_cvxpy_on_random_instances(x64):
    """250 instances, k = 1..8.

    CLARABEL's own X is accurate to only ~1e-7 (median) and up to ~1e-5 on near-degenerate
    instances (rank-deficient solutions), while our KKT residuals are ~1e-14. So X is compared at
    5e-5, as is what is unique even when β is singular (β[X], hence the flow velocity); our
    objective is never worse than cvxpy's beyond 1e-9 (cvxpy's X is slightly infeasible).
    """
    rng = np.random.default_rng(1)
    solve = jax.jit(solve_sdcp)
    worst = {"kkt": 0.0, "X": 0.0, "beta[X]": 0.0}
    n_active = 0
    for k in range(1, 9):
        for r in range(30 if k < 8 else 40):
            kind = KINDS[r % len(KINDS)]
            alpha, beta = instance(rng, k, kind)
            X = np.asarray(solve(jnp.asarray(alpha), jnp.asarray(beta)))
            X_ref, B = cvxpy_solve(alpha, beta)
            beta_psd = project_beta(jnp.asarray(beta))
            np.testing.assert_allclose(beta_psd, beta_np(B), atol=1e-12)  # same preprocessing
            res = sdcp_residuals(jnp.asarray(alpha), beta_psd, jnp.asarray(X))
            kkt = max(float(v) for v in res.values())
            assert kkt <= KKT_TOL, (k, kind, res)
            # problem scale: ‖α‖ / RMS(B) is the size of X the data can produce
            scale = np.linalg.norm(X) + np.linalg.norm(alpha) / np.sqrt(np.mean(B**2))
            (f, bx), (f_ref, bx_ref) = qp_objective(alpha, B, X), qp_objective(alpha, B, X_ref)
            assert f <= f_ref + 1e-9 * (1 + abs(f_ref)), (k, kind, f, f_ref)  # cvxpy X is slightly infeasible
            err_bx = np.linalg.norm(bx - bx_ref) / (np.linalg.norm(bx) + np.linalg.norm(alpha))
            assert err_bx <= 5e-5, (k, kind, err_bx)
            err_x = np.nan
            if kind not in ("singular-gram", "indefinite"):  # there B is singular and X not unique
                err_x = np.linalg.norm(X - X_ref) / scale
                assert err_x <= 5e-5, (k, kind, err_x)
            for key, value in zip(worst, (kkt, err_x, err_bx), strict=True):
                worst[key] = np.nanmax([worst[key], value])
            n_active += np.linalg.norm(X) > 0
    print("worst relative errors vs cvxpy:", {key: f"{v:.1e}" for key, v in worst.items()})
    assert n_active > 200  # the instances exercise the solver, not the α ⪰ 0 short cut


def test_empty_and_stable_alpha_give_zero(x64):
    X = solve_sdcp(jnp.zeros((0, 0)), jnp.zeros((0, 0, 0, 0)))
    assert X.shape == (0, 0)
    rng = np.random.default_rng(2)
    for k in (1, 3, 6):
        A = rng.standard_normal((k, k))
        alpha = jnp.asarray(A @ A.T)  # α ⪰ 0: X = 0 solves it, and is returned exactly
        beta = jnp.asarray(beta_np(random_psd_matrix(rng, k * (k + 1) // 2)))
        X = jax.jit(solve_sdcp)(alpha, beta)
        assert X.shape == (k, k) and np.all(np.asarray(X) == 0)


@pytest.mark.parametrize("a,b", [(-1.0, 2.0), (-3e-4, 5e-2), (0.5, 1.0), (-2.0, 1e3)])
def test_one_by_one_closed_form(x64, a, b):
    X = solve_sdcp(jnp.full((1, 1), a, jnp.float64), jnp.full((1, 1, 1, 1), b, jnp.float64))
    np.testing.assert_allclose(X[0, 0], max(0.0, -a / b), rtol=1e-13)


@pytest.mark.slow
def test_off_diagonal_weight_two_against_a_cholesky_brute_force(x64):
    """k = 2: min_{X=LLᵀ} ½ Σ_ijkl X_ij β_ijkl X_kl + Σ_ij α_ij X_ij, with sums over all (i, j), (k, l)."""
    alpha = np.array([[-1.0, 0.6], [0.6, -0.5]])
    beta = np.zeros((2, 2, 2, 2))
    beta[0, 0, 0, 0], beta[1, 1, 1, 1] = 2.0, 1.0
    for p, q in [(0, 1), (1, 0)]:  # couplings of the off-diagonal entry with itself and the diagonal
        beta[p, q, 0, 1] = beta[p, q, 1, 0] = 1.5
        beta[p, q, 0, 0] = beta[0, 0, p, q] = 0.4
    assert np.linalg.eigvalsh(np.asarray(beta_matrix(jnp.asarray(beta)))).min() > 0

    def objective(theta):
        L = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
        X = L @ L.T
        return 0.5 * np.einsum("ij,ijkl,kl->", X, beta, X) + np.sum(alpha * X)

    best = min(
        (
            scipy.optimize.minimize(objective, x0, method="BFGS", options={"gtol": 1e-12})
            for x0 in np.random.default_rng(3).standard_normal((10, 3))
        ),
        key=lambda r: r.fun,
    )
    L = np.array([[best.x[0], 0.0], [best.x[1], best.x[2]]])
    X_ref = L @ L.T
    X = np.asarray(solve_sdcp(jnp.asarray(alpha), jnp.asarray(beta)))
    np.testing.assert_allclose(X, X_ref, atol=1e-6)
    assert np.linalg.norm(X) > 0.1 and abs(X[0, 1]) > 0.05
    # the test separates the conventions: counting each off-diagonal pair once gives another X
    beta_once = beta.copy()
    beta_once[:, :, 1, 0] = 0
    X_once = np.asarray(solve_sdcp(jnp.asarray(alpha), jnp.asarray(beta_once)))
    assert np.abs(X_once - X).max() > 0.05


@pytest.mark.slow
def test_jit_and_vmap(x64):
    rng = np.random.default_rng(4)
    k = 3
    cases = [instance(rng, k, kind) for kind in KINDS]
    cases.append((np.eye(k), cases[0][1]))  # a trivial one in the batch
    alphas, betas = (jnp.asarray(np.stack(z)) for z in zip(*cases, strict=True))
    Xs = jax.jit(jax.vmap(solve_sdcp))(alphas, betas)
    solve = jax.jit(solve_sdcp)
    for (alpha, beta), X in zip(cases, Xs, strict=True):
        np.testing.assert_allclose(X, solve(jnp.asarray(alpha), jnp.asarray(beta)), atol=1e-12)
    assert np.all(np.asarray(Xs[-1]) == 0)


@pytest.mark.slow
def test_float32_is_finite_and_close_to_float64(x64):
    rng = np.random.default_rng(5)
    solve = jax.jit(solve_sdcp)
    for k in (1, 2, 4, 8):
        for kind in KINDS:
            alpha, beta = instance(rng, k, kind)
            X64 = np.asarray(solve(jnp.asarray(alpha), jnp.asarray(beta)))
            X32 = solve(jnp.asarray(alpha, jnp.float32), jnp.asarray(beta, jnp.float32))
            assert X32.dtype == jnp.float32 and np.all(np.isfinite(X32))
            scale = np.linalg.norm(X64) + np.linalg.norm(alpha) / np.sqrt(np.mean(beta**2))
            if kind != "singular-gram":
                assert np.linalg.norm(np.asarray(X32) - X64) <= 1e-3 * scale, (k, kind)
            res = sdcp_residuals(
                jnp.asarray(alpha), project_beta(jnp.asarray(beta)), jnp.asarray(X32, jnp.float64)
            )
            assert max(float(v) for v in res.values()) <= 1e-4, (k, kind, res)


# ---- hard instances: ill-conditioned, rank-deficient and near-degenerate, k up to 10 ----


def hard_instance(rng, k, kind):
    """β a low-rank Gram matrix plus a small ridge (cond(B) 1e3-1e5, as third-derivative Gram matrices)."""
    m = k * (k + 1) // 2
    r = max(1, m // 3)
    G = rng.standard_normal((m, r))
    ridge = {"ill-conditioned": 1e-3, "rank-deficient": 1e-3, "near-degenerate": 1e-4}[kind]
    B = G @ G.T / r + ridge * np.eye(m)
    Q = np.linalg.qr(rng.standard_normal((k, k)))[0]
    if kind == "ill-conditioned":  # α indefinite
        d = rng.standard_normal(k) - 0.5
    elif kind == "rank-deficient":  # half of α's directions stable: rank X < k
        d = rng.uniform(0.2, 1.0, k) * np.where(np.arange(k) < max(1, k // 2), -1, 1)
    else:  # eigenvalues of α within 1e-9 of 0: strict complementarity nearly fails
        d = np.where(np.arange(k) % 3 == 0, -1.0, 1e-9 * rng.standard_normal(k))
    return (Q * d) @ Q.T, beta_np(B), np.linalg.cond(B)


HARD_KINDS = ["ill-conditioned", "rank-deficient", "near-degenerate"]
solve_with_info = jax.jit(solve_sdcp_with_info)  # as the engine: traced once per shape, called jitted


@pytest.mark.slow
@pytest.mark.parametrize("kind", HARD_KINDS)
def test_converges_on_hard_instances_and_agrees_with_cvxpy(x64, kind):
    """The old μ = clip(‖F‖, ., 1e-2) stopped at 60 iterations with min eig(α + β[X]) ~ -1 here."""
    rng = np.random.default_rng(7)
    worst = {"kkt": 0.0, "beta[X]": 0.0, "iterations": 0}
    for k in (3, 4, 5, 6, 8, 10):
        for _ in range(3):
            alpha, beta, cond = hard_instance(rng, k, kind)
            X, info = solve_with_info(jnp.asarray(alpha), jnp.asarray(beta))
            assert bool(info["converged"]) and float(info["residual"]) <= 1e-13, (k, cond, info)
            res = sdcp_residuals(jnp.asarray(alpha), project_beta(jnp.asarray(beta)), X)
            kkt = max(float(v) for v in res.values())
            assert kkt <= KKT_TOL, (k, cond, res)
            X_ref, B = cvxpy_solve(alpha, beta)
            (f, bx), (f_ref, bx_ref) = qp_objective(alpha, B, np.asarray(X)), qp_objective(alpha, B, X_ref)
            assert f <= f_ref + 1e-8 * (1 + abs(f_ref)), (k, cond, f, f_ref)
            err_bx = np.linalg.norm(bx - bx_ref) / (np.linalg.norm(bx) + np.linalg.norm(alpha))
            assert err_bx <= 1e-4, (k, cond, err_bx)
            worst = {
                "kkt": max(worst["kkt"], kkt), "beta[X]": max(worst["beta[X]"], err_bx),
                "iterations": max(worst["iterations"], int(info["iterations"])),
            }  # fmt: skip
    print(kind, worst)


@pytest.mark.slow
def test_float32_hard_instances_converge_to_the_accuracy_of_float32():
    """In float32 (x64 off, as the engine) the solve converges and α + β[X] is PSD up to ~eps·cond(B).

    The floor is round-off in B·x with ‖x‖ ~ cond(B) (observed up to ~15 eps·cond(B)); the old solver
    reached its cap with min eig(α + β[X]) / scale of -0.03 .. -0.4 on these instances.
    """
    tol = 50 * float(jnp.finfo(jnp.float32).eps)
    rng = np.random.default_rng(8)
    for kind in HARD_KINDS:
        for k in (3, 6, 10):
            alpha, beta, cond = hard_instance(rng, k, kind)
            X, info = solve_with_info(jnp.asarray(alpha, jnp.float32), jnp.asarray(beta, jnp.float32))
            assert X.dtype == jnp.float32 and bool(info["converged"]), (kind, k, info)
            X = np.asarray(X, np.float64)
            S = alpha + np.einsum("ijkl,kl->ij", np.asarray(np_preprocess_tensor(beta)), X)
            scale = np.linalg.norm(alpha) + np.linalg.norm(S - alpha)
            assert np.linalg.eigvalsh((S + S.T) / 2)[0] >= -tol * cond * scale, (kind, k, cond)
            assert abs(np.sum(X * S)) <= tol * cond * np.linalg.norm(X) * scale, (kind, k, cond)


@pytest.mark.slow
def test_reports_non_convergence():
    """A capped solve on a hard instance says so (converged False, residual above tol)."""
    alpha, beta, _ = hard_instance(np.random.default_rng(9), 6, "near-degenerate")
    alpha, beta = jnp.asarray(alpha, jnp.float32), jnp.asarray(beta, jnp.float32)
    _, info = solve_sdcp_with_info(alpha, beta, max_newton=1)
    assert not bool(info["converged"]) and int(info["iterations"]) == 1


def np_preprocess_tensor(beta):
    return beta_np(np_preprocess(beta))
