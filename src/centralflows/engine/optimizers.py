"""GD, Scalar RMSProp and RMSProp, each defined once as a state update F(s, g) and a preconditioner P(s).

Every optimizer is preconditioned gradient descent (REFERENCE §1.1). One discrete step is

    g_t = ∇L(w_t);   s_t = F(s_{t-1}, g_t);   w_{t+1} = w_t - P(s_t)^{-1} g_t,

so the preconditioner of step t already contains g_t. The flows use the same definition: their
state drift is derived from F as ds/dt = r ⊙ (F(s, g) - s), with one rate r per state leaf (§1.2):

* ν advances at rate 1/β₂, which makes the flow consistent with the discrete update written as
  ν_t - ν_{t-1} = ((1-β₂)/β₂)(g_t² - ν_t);
* the step counter t advances at rate 1: one unit of flow time is one step (`flow_t_rate="step"`).
  The authors' code divides the whole update by β₂, so their counter runs at 1/β₂
  (`flow_t_rate="authors"`, for comparing with their numbers); this only matters for bias correction
  and learning-rate schedules, and by default we keep flow time = step count.

Conventions: ε is added outside the square root, P = (√ν̂ + ε)/η; ν̂ = ν/(1-β₂^t) with bias
correction, else ν̂ = ν. States are dicts of float arrays (the counter is a float so that flows can
integrate it). P(s) is returned as an array that broadcasts against w: a scalar for GD and Scalar
RMSProp, a vector of shape (d,) for RMSProp.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("gd", "scalar_rmsprop", "rmsprop")
FLOW_T_RATES = ("step", "authors")  # the flows' step-counter rate: 1, or the authors' 1/β₂

Schedule = Callable[[jax.Array], jax.Array]


def _as_schedule(lr: float | Schedule) -> Schedule:
    return lr if callable(lr) else (lambda t: jnp.asarray(lr))


@dataclass(frozen=True)
class Optimizer:
    """A preconditioned-GD optimizer: `update_state` is F, `precond` is P.

    Attributes:
        name: one of OPTIMIZERS.
        lr: learning rate η, a float or a schedule of the float step counter t (t = 1 on the
            first step, because F has already counted the step when P is evaluated).
        beta2: EMA coefficient β₂ of ν (RMSProp variants).
        eps: ε added outside the square root (RMSProp variants).
        bias_correction: divide ν by (1 - β₂^t) before taking the root.
        flow_t_rate: the flows' counter rate, "step" (1) or "authors" (1/β₂ for the RMSProp variants).
    """

    name: str
    lr: float | Schedule
    beta2: float = 0.99
    eps: float = 0.0
    bias_correction: bool = False
    flow_t_rate: str = "step"

    def learning_rate(self, s: dict) -> jax.Array:
        return _as_schedule(self.lr)(s["t"])

    def init_state(self, w: jax.Array) -> dict:
        """The state before the first step: t = 0 and ν = 0."""
        t = jnp.zeros((), w.dtype)
        if self.name == "gd":
            return {"t": t}
        nu = jnp.zeros((), w.dtype) if self.name == "scalar_rmsprop" else jnp.zeros_like(w)
        return {"t": t, "nu": nu}

    def update_state(self, s: dict, g: jax.Array) -> dict:
        """F(s, g): the state after seeing gradient g (counts the step)."""
        new = {"t": s["t"] + 1}
        if self.name == "scalar_rmsprop":
            new["nu"] = s["nu"] + (1 - self.beta2) * (jnp.sum(g**2) - s["nu"])
        elif self.name == "rmsprop":
            new["nu"] = s["nu"] + (1 - self.beta2) * (g**2 - s["nu"])
        return new

    def precond(self, s: dict) -> jax.Array:
        """P(s), broadcastable against w."""
        lr = self.learning_rate(s)
        if self.name == "gd":
            return 1 / lr
        nu_hat = s["nu"] / (1 - self.beta2 ** s["t"]) if self.bias_correction else s["nu"]
        return (jnp.sqrt(nu_hat) + self.eps) / lr

    def state_rates(self) -> dict:
        """Rate per state leaf at which the flows run F (see the module docstring)."""
        if self.name == "gd":  # the authors' GD flow also counts at rate 1
            return {"t": 1.0}
        return {"t": 1 / self.beta2 if self.flow_t_rate == "authors" else 1.0, "nu": 1 / self.beta2}

    def dstate_dt(self, s: dict, g: jax.Array) -> dict:
        """The flows' state drift, derived from F: r ⊙ (F(s, g) - s)."""
        new = self.update_state(s, g)
        rates = self.state_rates()
        return {key: rates[key] * (new[key] - s[key]) for key in s}

    def step(self, w: jax.Array, s: dict, g: jax.Array) -> tuple[jax.Array, dict]:
        """One discrete step from (w_t, s_{t-1}) with g = ∇L(w_t): returns (w_{t+1}, s_t)."""
        s = self.update_state(s, g)
        return w - g / self.precond(s), s

    def as_optax(self) -> optax.GradientTransformation:
        """The discrete step as an optax transformation on flat parameter vectors.

        `update(g, s)` returns the update -P(s_t)^{-1} g with s_t = F(s, g), and s_t.
        """

        def init(params):
            return self.init_state(params)

        def update(grads, state, params=None):
            del params
            state = self.update_state(state, grads)
            return -grads / self.precond(state), state

        return optax.GradientTransformation(init, update)

    def log_values(self, s: dict, selected_idx: jax.Array) -> dict:
        """The `opt.*` quantities of the authors' HDF5 schema (REFERENCE §3.9)."""
        out = {"opt.t": s["t"], "opt.lr": self.learning_rate(s)}
        if self.name == "scalar_rmsprop":
            out["opt.nu"] = s["nu"]
            out["opt.effective_step_size"] = 1 / self.precond(s)
        elif self.name == "rmsprop":
            ess = 1 / self.precond(s)
            out["opt.nu_l1"] = jnp.sum(jnp.abs(s["nu"]))
            out["opt.nu_selected_idx"] = s["nu"][selected_idx]
            out["opt.ess_mean"] = jnp.mean(ess)
            out["opt.ess_harmonic_mean"] = 1 / jnp.mean(1 / ess)
        return out


def make_optimizer(
    name: str,
    lr: float | Schedule,
    beta2: float = 0.99,
    eps: float = 0.0,
    bias_correction: bool = False,
    flow_t_rate: str = "step",
) -> Optimizer:
    """Builds an optimizer by name ("gd", "scalar_rmsprop" or "scalar-rmsprop", "rmsprop").

    Raises:
        ValueError: unknown name (the message lists the valid ones) or invalid hyperparameters.
    """
    name = name.replace("-", "_")
    if name not in OPTIMIZERS:
        close = difflib.get_close_matches(name, OPTIMIZERS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown optimizer '{name}'; valid names: {', '.join(OPTIMIZERS)}.{hint}")
    if not callable(lr) and not lr > 0:
        raise ValueError(f"the learning rate must be > 0, got {lr}")
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must lie in (0, 1), got {beta2}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if flow_t_rate not in FLOW_T_RATES:
        raise ValueError(f"flow_t_rate must be one of {', '.join(FLOW_T_RATES)}, got {flow_t_rate!r}")
    return Optimizer(name, lr, float(beta2), float(eps), bool(bias_correction), flow_t_rate)
