"""Ablated flows: no curvature penalty in dw/dt, the edge held through ν alone, and -(2/S)∇L at the edge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.ablated import AblatedFlow
from centralflows.engine.compiled import Compiled
from centralflows.engine.derivatives import third_derivative_pairs, upper_pairs
from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import make_optimizer
from tests.engine.helpers import as_problem, cubic_loss

EIG = EigConfig(frequency=1, track_threshold=1.5, initial_k=3, max_k=6, tol=1e-12)


def at_the_edge(name, spectrum=(2.05, 1.99)):
    """A cubic loss and a state with P = 2.05/1.99·I: top effective eigenvalue 1.99, ν decaying."""
    loss_fn, w0, _ = cubic_loss(list(spectrum))
    d, eta = w0.shape[0], 1.0
    opt = make_optimizer(name, eta, beta2=0.9)
    kern = Compiled(as_problem(loss_fn, w0), opt)
    nu = (eta * spectrum[0] / 1.99) ** 2
    s = {"t": jnp.ones(()), "nu": jnp.full(d, nu) if name == "rmsprop" else jnp.asarray(nu)}
    return loss_fn, kern, AblatedFlow(kern, w0, s, EIG, nsubsteps=4, initialize=False)


@pytest.mark.slow
def test_the_ablated_velocity_is_the_central_one_without_the_penalty(x64):
    loss_fn, kern, flow = at_the_edge("rmsprop")
    measured = flow.measure()
    w, s = flow.w, flow.s
    P = kern.precond(s)
    g = jax.grad(loss_fn)(w)
    dw_ablated = measured.carry.dw_dt
    np.testing.assert_allclose(dw_ablated, -g / P, rtol=1e-12)  # exactly the stable velocity
    theta, U = flow.eigs.theta, flow.eigs.eigenvectors(P)
    k = int(jnp.sum(theta > 1.95))
    assert k >= 1
    X_ablated = flow._velocity(theta, U)[2]["X"]
    assert float(jnp.trace(X_ablated)) > 1e-8  # the edge is active: Σ ≠ 0, yet dw/dt carries no trace of it
    dw_central, _, aux = kern.central_velocity(k)(w, s, theta[:k], U[:, :k], 0.25)
    i, j = upper_pairs(k)
    c = aux["X"][i, j] * jnp.where(i == j, 1.0, 2.0)
    penalty = -0.5 * (c @ third_derivative_pairs(loss_fn, w, U[:, :k])) / P  # -½P⁻¹∇⟨Σ,H⟩
    assert float(jnp.linalg.norm(penalty)) > 1e-8
    np.testing.assert_allclose(dw_central - penalty, dw_ablated, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rmsprop", "scalar_rmsprop"])
def test_the_edge_is_held_through_nu_alone(x64, name):
    loss_fn, kern, flow = at_the_edge(name)
    measured = flow.measure()
    theta, U = flow.eigs.theta, flow.eigs.eigenvectors(kern.precond(flow.s))
    dw_dt, ds_dt = measured.carry.dw_dt, measured.carry.ds_dt
    w1 = flow.w + 0.25 * dw_dt
    s1 = jax.tree.map(lambda a, b: a + 0.25 * b, flow.s, ds_dt)
    p1 = np.asarray(kern.precond(s1))
    H1 = np.asarray(jax.hessian(loss_fn)(w1))
    k = int(jnp.sum(theta > 1.95)) if name == "rmsprop" else 1
    X = np.asarray(flow._velocity(theta, U)[2]["X"])
    assert np.trace(X) > 1e-8
    # the SDCP's own condition, on the critical eigenvectors of the start of the substep: it holds up
    # to the curvature of P(ν) = √ν/η over the substep (w enters H affinely for a cubic loss)
    S = np.asarray(U[:, :k]).T @ (2 * np.diag(p1) - H1) @ np.asarray(U[:, :k])
    assert np.linalg.eigvalsh(S).min() > -1e-3
    assert abs(np.sum(X * S)) < 1e-3 * np.trace(X)
    # the true top effective eigenvalue: off by the rotation of the eigenvectors over the substep
    # (second order; the central flow overshoots by as much on this problem)
    top = np.linalg.eigvalsh(H1 / np.sqrt(np.outer(p1, p1)))[-1]
    assert abs(top - 2) < 1e-2


@pytest.mark.slow
def test_scalar_rmsprop_ablated_flow_is_minus_two_over_s_grad_at_the_edge(x64):
    loss_fn, kern, flow = at_the_edge("scalar_rmsprop")
    # full eigen-solves at every substep: the top two eigenvalues of this cubic rotate into each other
    flow = AblatedFlow(kern, flow.w, flow.s, EIG, nsubsteps=4, frequency_in_substeps=True, initialize=False)
    flow.step(flow.measure())
    measured = flow.measure()
    logs = measured.logs
    S = float(logs["hessian_eigs"][0])
    assert abs(float(logs["effective_hessian_eigs"][0]) - 2) < 5e-3  # held at the edge up to O(dt²)
    # so η/√ν = 2/S(w): dw/dt = -(2/S)∇L, the website's ablated flow
    np.testing.assert_allclose(measured.carry.dw_dt, -(2 / S) * jax.grad(loss_fn)(flow.w), rtol=5e-3)


def test_gd_has_no_ablated_flow(x64):
    loss_fn, w0, _ = cubic_loss([2.05])
    kern = Compiled(as_problem(loss_fn, w0), make_optimizer("gd", 1.0))
    with pytest.raises(ValueError, match="adaptive preconditioner"):
        AblatedFlow(kern, w0, {"t": jnp.zeros(())}, EIG)
