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

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from centralflows.engine.registry import OPTIMIZERS, optimizer_class

FLOW_T_RATES = ("step", "authors")  # the flows' step-counter rate: 1, or the authors' 1/β₂

Schedule = Callable[[jax.Array], jax.Array]


def _as_schedule(lr: float | Schedule) -> Schedule:
    return lr if callable(lr) else (lambda t: jnp.asarray(lr))


@dataclass(frozen=True)
class Optimizer:
    """A preconditioned-GD optimizer: `update_state` is F, `precond` is P; subclasses define both.

    Attributes:
        lr: learning rate η, a float or a schedule of the float step counter t (t = 1 on the
            first step, because F has already counted the step when P is evaluated).
        flow_t_rate: the flows' counter rate, "step" (1) or "authors" (1/β₂ for the RMSProp variants).

    Class attributes (capabilities, read by the flows and the run configuration):
        name: the registry name (`centralflows.engine.registry.OPTIMIZERS`).
        scalar_preconditioner: P(s) is a scalar, so effective and raw eigenvalues differ by P alone.
        has_ema: the state holds an EMA ν of squared gradients, a channel that can hold the edge
            (the ablated and stationary flows need one).
    """

    lr: float | Schedule
    flow_t_rate: str = "step"

    name: ClassVar[str] = ""
    scalar_preconditioner: ClassVar[bool] = True
    has_ema: ClassVar[bool] = False

    def learning_rate(self, s: dict) -> jax.Array:
        return _as_schedule(self.lr)(s["t"])

    def init_state(self, w: jax.Array) -> dict:
        """The state before the first step: t = 0."""
        return {"t": jnp.zeros((), w.dtype)}

    def update_state(self, s: dict, g: jax.Array) -> dict:
        """F(s, g): the state after seeing gradient g (counts the step)."""
        return {"t": s["t"] + 1}

    def precond(self, s: dict) -> jax.Array:
        """P(s), broadcastable against w."""
        raise NotImplementedError

    def state_rates(self) -> dict:
        """Rate per state leaf at which the flows run F (see the module docstring)."""
        return {"t": 1.0}

    def dstate_dt(self, s: dict, g: jax.Array) -> dict:
        """The flows' state drift, derived from F: r ⊙ (F(s, g) - s)."""
        new = self.update_state(s, g)
        rates = self.state_rates()
        return {key: rates[key] * (new[key] - s[key]) for key in s}

    def step(self, w: jax.Array, s: dict, g: jax.Array) -> tuple[jax.Array, dict]:
        """One discrete step from (w_t, s_{t-1}) with g = ∇L(w_t): returns (w_{t+1}, s_t)."""
        s = self.update_state(s, g)
        return w - g / self.precond(s), s

    def as_optax(self):
        """The discrete step as an optax transformation on flat parameter vectors.

        `update(g, s)` returns the update -P(s_t)^{-1} g with s_t = F(s, g), and s_t.
        """
        import optax  # here, so that the run configuration reads the registry without optax

        def init(params):
            return self.init_state(params)

        def update(grads, state, params=None):
            del params
            state = self.update_state(state, grads)
            return -grads / self.precond(state), state

        return optax.GradientTransformation(init, update)

    def log_values(self, s: dict, selected_idx: jax.Array) -> dict:
        """The `opt.*` quantities of the authors' HDF5 schema (REFERENCE §3.9)."""
        return {"opt.t": s["t"], "opt.lr": self.learning_rate(s)}


@dataclass(frozen=True)
class GD(Optimizer):
    """Gradient descent: no state beyond the counter, P = 1/η."""

    name: ClassVar[str] = "gd"

    def precond(self, s: dict) -> jax.Array:
        return 1 / self.learning_rate(s)


@dataclass(frozen=True)
class _EMAOptimizer(Optimizer):
    """The RMSProp family: ν is an EMA of squared gradients and P = (√ν̂ + ε)/η.

    Attributes:
        beta2: EMA coefficient β₂ of ν.
        eps: ε added outside the square root.
        bias_correction: divide ν by (1 - β₂^t) before taking the root.
    """

    beta2: float = 0.99
    eps: float = 0.0
    bias_correction: bool = False

    has_ema: ClassVar[bool] = True

    def _squared(self, g: jax.Array) -> jax.Array:
        """The squared gradient that ν averages."""
        raise NotImplementedError

    def _zero_nu(self, w: jax.Array) -> jax.Array:
        raise NotImplementedError

    def init_state(self, w: jax.Array) -> dict:
        """The state before the first step: t = 0 and ν = 0."""
        return {"t": jnp.zeros((), w.dtype), "nu": self._zero_nu(w)}

    def update_state(self, s: dict, g: jax.Array) -> dict:
        return {"t": s["t"] + 1, "nu": s["nu"] + (1 - self.beta2) * (self._squared(g) - s["nu"])}

    def precond(self, s: dict) -> jax.Array:
        lr = self.learning_rate(s)
        nu_hat = s["nu"] / (1 - self.beta2 ** s["t"]) if self.bias_correction else s["nu"]
        return (jnp.sqrt(nu_hat) + self.eps) / lr

    def state_rates(self) -> dict:
        return {"t": 1 / self.beta2 if self.flow_t_rate == "authors" else 1.0, "nu": 1 / self.beta2}


@dataclass(frozen=True)
class ScalarRMSProp(_EMAOptimizer):
    """Scalar RMSProp: ν averages ‖g‖², so P is a scalar."""

    name: ClassVar[str] = "scalar_rmsprop"

    def _squared(self, g):
        return jnp.sum(g**2)

    def _zero_nu(self, w):
        return jnp.zeros((), w.dtype)

    def log_values(self, s: dict, selected_idx: jax.Array) -> dict:
        out = super().log_values(s, selected_idx)
        out["opt.nu"] = s["nu"]
        out["opt.effective_step_size"] = 1 / self.precond(s)
        return out


@dataclass(frozen=True)
class RMSProp(_EMAOptimizer):
    """RMSProp: ν averages g² coordinate-wise, so P is a vector of shape (d,)."""

    name: ClassVar[str] = "rmsprop"
    scalar_preconditioner: ClassVar[bool] = False

    def _squared(self, g):
        return g**2

    def _zero_nu(self, w):
        return jnp.zeros_like(w)

    def log_values(self, s: dict, selected_idx: jax.Array) -> dict:
        out = super().log_values(s, selected_idx)
        ess = 1 / self.precond(s)
        out["opt.nu_l1"] = jnp.sum(jnp.abs(s["nu"]))
        out["opt.nu_selected_idx"] = s["nu"][selected_idx]
        out["opt.ess_mean"] = jnp.mean(ess)
        out["opt.ess_harmonic_mean"] = 1 / jnp.mean(1 / ess)
        return out


def hyperparameters(name: str) -> tuple[str, ...]:
    """The constructor options of optimizer `name` beyond lr and flow_t_rate (e.g. beta2, eps)."""
    fields = dataclasses.fields(optimizer_class(name))
    return tuple(f.name for f in fields if f.name not in ("lr", "flow_t_rate"))


def make_optimizer(
    name: str,
    lr: float | Schedule,
    beta2: float = 0.99,
    eps: float = 0.0,
    bias_correction: bool = False,
    flow_t_rate: str = "step",
) -> Optimizer:
    """Builds an optimizer by name ("gd", "scalar_rmsprop" or "scalar-rmsprop", "rmsprop").

    Options the optimizer does not have (beta2, eps, bias_correction for GD) are ignored.

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
    given = {"beta2": float(beta2), "eps": float(eps), "bias_correction": bool(bias_correction)}
    options = {key: given[key] for key in hyperparameters(name)}
    return optimizer_class(name)(lr=lr, flow_t_rate=flow_t_rate, **options)
