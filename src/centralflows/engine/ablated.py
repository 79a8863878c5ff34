"""Ablated central flows: the central flow with its implicit curvature penalty removed (REFERENCE §1.5, §1.6).

Definition adopted (for both Scalar RMSProp and RMSProp; docs/stationary.md §"Ablated flows"):

    dw/dt = -P(s)⁻¹ ∇L(w)                                   (no -½P⁻¹∇⟨Σ,H⟩ term)
    ds/dt = E_δ[f(s, ∇L(w + δ))] ≈ f(s, g) + ½∂²_g f(s, g)[HΣH]  (the central flow's state drift, kept)
    Σ = U X Uᵀ from the SDCP  X ⪰ 0,  Uᵀ(2P - H)U|_{t+dt} ⪰ 0,  ⟨X, Uᵀ(2P - H)U|_{t+dt}⟩ = 0,

i.e. the central flow of §1.4 with the X-part of dw/dt set to zero. Σ is still the covariance of
oscillations that keep the effective sharpness at 2, but it now acts only through the preconditioner
(ν grows with the oscillations' squared gradients) and no longer through the implicit sharpness
penalty on w. In the SDCP the X-dependence of the stability matrix is therefore β[X] = 2dt·Uᵀ(dP/dt)_X U
only; the ν channel alone has to hold the edge.

Why this definition:
* It is the one the reference infers for RMSProp [INF §1.6], and for Scalar RMSProp it *is* the
  website's ablated flow dw/dt = -(2/S(w))∇L at the edge of stability: while the SDCP is active it
  pins S_eff = ηS/√ν at 2, so η/√ν = 2/S(w) and dw/dt = -(2/S)∇L exactly. Written this way the
  flow is also defined before the edge (and whenever it leaves the edge): there Σ = 0 and it is the
  stable flow, like the central flow, so the central and ablated flows coincide until S_eff first
  reaches 2 and differ only through the penalty afterwards, which is what the acceleration-via-
  regularization figures (W2.15, W3.14) compare.
* Taking instead dw/dt = -(2/S)∇L from t = 0 would be undefined before the edge (S_eff < 2 means
  the step size η/√ν is not 2/S) and would discard the ν-dynamics that make RMSProp's preconditioner.
* For Scalar RMSProp the preconditioner is scalar, so ν moves all effective eigenvalues together
  and only the top one can bind: the SDCP is restricted to the top eigenpair (k ≤ 1), where it is a
  scalar complementarity problem with an exact solution. (With k > 1 the map X ↦ Uᵀ(dP/dt)_X U =
  c·tr(ΘXΘ)·I is not self-adjoint, and its symmetrised version would not solve the intended problem.)
* GD has no state channel (β = 0), so its ablated flow is undefined; asking for it is an error.
"""

from __future__ import annotations

from centralflows.engine.processes import CentralFlow


class AblatedFlow(CentralFlow):
    """The central flow without the implicit curvature penalty; logs the central flow's schema.

    Same constructor and options as `CentralFlow` (nsubsteps, sdcp_threshold, frequency_in_substeps,
    initialize). The logged `predicted_*` values use the ablated flow's own Σ.
    """

    name = "ablated"
    penalty = False

    def __init__(self, kernels, *args, **kwargs):
        if not kernels.opt.has_ema:
            raise ValueError(
                "the ablated flow needs an adaptive preconditioner (scalar_rmsprop or rmsprop): "
                "for GD no state channel can hold the edge once the curvature penalty is removed"
            )
        # a scalar P: only the top effective eigenvalue can bind (module docstring)
        self.top_only = kernels.opt.scalar_preconditioner
        super().__init__(kernels, *args, **kwargs)
