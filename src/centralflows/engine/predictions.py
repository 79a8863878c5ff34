"""What the central and stationary flows predict about the discrete run from Σ = U X Uᵀ (REFERENCE §1.4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def predictions(logs: dict, X, HU, U, variances, selected=None) -> dict:
    """The time-averaged loss and gradient statistics of the oscillating run, and Σ's size.

    Args:
        logs: the flow's observations ("train_loss", "grad_norm_sq", "grad_sq_selected_idx").
        X: [k, k] the SDCP solution; HU: [d, k] H u_i; U: [d, k] the P-orthonormal critical eigenvectors.
        variances: [k] the eigenvalues of X, descending (the variances along Σ's eigenvectors).
        selected: the `*_selected_idx` coordinates, to predict their squared gradients; None: not logged.
    Returns:
        predicted_loss = L + tr X, predicted_grad_norm_sq = ‖g‖² + ⟨HUX, HU⟩, (per selected coordinate
        the same), predicted_variances and sigma_trace = tr Σ.
    """
    HUX = HU @ X
    out = {
        "predicted_loss": logs["train_loss"] + jnp.trace(X),
        "predicted_grad_norm_sq": logs["grad_norm_sq"] + jnp.sum(HUX * HU),
    }
    if selected is not None:
        out["predicted_grad_sq_selected_idx"] = logs["grad_sq_selected_idx"] + jnp.sum(
            HUX[selected] * HU[selected], axis=1
        )
    out["predicted_variances"] = variances
    out["sigma_trace"] = jnp.sum((U @ X) * U)
    return out


def deltas(sigma_basis, P, w_other, w) -> jax.Array:
    """Uᵀ P (w_other - w): displacement along the eigenvectors of Σ, in units where E[δδᵀ] = X."""
    return sigma_basis.T @ (P * (w_other - w))
