"""Computed toy problems drawn by the figures (no training run): preconditioned GD on a 2-D quadratic."""

from __future__ import annotations

import numpy as np


def preconditioned_gd_quadratic(
    H=((1.0, 0.6), (0.6, 0.8)), P=(0.46, 2.9), w0=(0.3, -0.5), steps: int = 25
) -> dict:
    """Preconditioned GD w <- w - P^{-1} H w on L(w) = 1/2 w^T H w (REFERENCE §2.3 W3.3).

    With lambda_max(P^{-1} H) > 2 the iterates diverge along q_1, the right eigenvector of the
    non-symmetric P^{-1} H with the largest eigenvalue, which differs from H's top eigenvector
    whenever P is not a multiple of the identity.

    Args:
        H: the 2x2 symmetric positive-definite Hessian.
        P: the diagonal of the preconditioner P (the step is P^{-1} times the gradient).
        w0: the starting point.
        steps: number of steps.

    Returns:
        {"trajectory": [steps+1, 2], "q1": unit [2], "h1": unit [2], "seff": lambda_max(P^{-1} H)}.
    """
    H, Pinv = np.asarray(H, float), np.diag(1.0 / np.asarray(P, float))
    A = Pinv @ H  # the effective Hessian: right eigenvectors q_i with P^{-1} H q_i = lambda_i q_i
    vals, vecs = np.linalg.eig(A)
    q1 = np.real(vecs[:, np.argmax(np.real(vals))])
    h1 = np.linalg.eigh(H)[1][:, -1]
    w = [np.asarray(w0, float)]
    for _ in range(steps):
        w.append(w[-1] - A @ w[-1])
    return {
        "trajectory": np.array(w),
        "q1": q1 / np.linalg.norm(q1),
        "h1": h1,
        "seff": float(np.max(np.real(vals))),
    }
