"""The jitted functions of one run (loss gradient, observations, stable substep, central velocity)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.central import central_velocity
from centralflows.engine.derivatives import third_derivative_pairs
from centralflows.engine.optimizers import Optimizer


def selected_indices(d: int, n: int = 25) -> jax.Array:
    """n evenly spaced coordinates, for the per-coordinate logs (`*_selected_idx`)."""
    return jnp.asarray(np.linspace(0, d - 1, min(n, d)).round().astype(np.int32))


class Compiled:
    """The jitted functions shared by the processes of one run, compiled once per run.

    Args:
        problem: the loss and metrics (`centralflows.problem.build.Problem`, or any object with
            `loss_fn`, `w0`, `train_metrics`, `test_metrics`, `train_outputs`, `test_outputs`).
        optimizer: the run's optimizer.
        chunk_size: Hessian-vector products run at once in the third derivatives (None: all).
        unroll: the third derivatives one pair at a time in one program (eig.hvp_batching "unroll").
    """

    def __init__(self, problem, optimizer: Optimizer, chunk_size: int | None = None, unroll: bool = False):
        self.problem = problem
        self.opt = optimizer
        self.loss_fn = problem.loss_fn
        self.chunk_size, self.unroll = chunk_size, unroll
        self.idx = selected_indices(problem.w0.shape[0])
        self.tx = optimizer.as_optax()
        self.grad = jax.jit(jax.grad(self.loss_fn))
        self.observe = jax.jit(self._observe)
        self.optax_update = jax.jit(self.tx.update)
        self.precond = jax.jit(lambda s: jnp.broadcast_to(optimizer.precond(s), problem.w0.shape))
        self.stable_substep = jax.jit(self._stable_substep)
        # The network's third derivatives are a program of their own: it depends on the loss only, so
        # the persistent compilation cache shares it across learning rates and optimizers, while
        # the optimizer-dependent rest of the velocity is small to compile (as eigs.run_lobpcg).
        self.third_pairs = jax.jit(
            lambda w, U: third_derivative_pairs(self.loss_fn, w, U, chunk_size, unroll)
        )
        self._central = {}

    def _observe(self, w, s):
        """Loss, metrics, outputs, gradient statistics and opt.* at (w, s); also returns ∇L(w)."""
        p = self.problem
        loss, g = jax.value_and_grad(self.loss_fn)(w)
        train, test = p.train_metrics(w), p.test_metrics(w)
        out = {
            "train_loss": loss,
            "train_acc": train["acc"],
            "test_loss": test["loss"],
            "test_acc": test["acc"],
            "train_outputs": p.train_outputs(w),
            "test_outputs": p.test_outputs(w),
            "grad_norm_sq": jnp.sum(g**2),
            "grad_sq_selected_idx": g[self.idx] ** 2,
        }
        out.update(self.opt.log_values(s, self.idx))
        return out, g

    def initial_state(self, w, s):
        """The flows apply F once at construction, mirroring the discrete run's first update (§1.4)."""
        return self.opt.update_state(s, self.grad(w))

    def _stable_substep(self, w, s, dt):
        """One Euler substep of the stable flow."""
        g = jax.grad(self.loss_fn)(w)
        ds = self.opt.dstate_dt(s, g)
        w = w - dt * g / self.opt.precond(s)
        return w, jax.tree.map(lambda a, b: a + dt * b, s, ds)

    def stable_substeps(self, w, s, n: int):
        """n Euler substeps of the stable flow over one unit of time (a host loop: see `eigs.run_lobpcg`)."""
        for _ in range(n):
            w, s = self.stable_substep(w, s, 1.0 / n)
        return w, s

    def central_velocity(self, k_c: int, penalty: bool = True, secant: bool = True):
        """The jitted central-flow velocity for k_c critical eigenpairs (compiled per k_c, penalty,
        secant).

        Returns `velocity(w, s, theta, U, dt, gradH=None) -> (dw_dt, ds_dt, aux)`
        (`centralflows.engine.central`); gradH, the third-derivative vectors of U's pairs, is computed
        at w unless given.
        """
        key = (k_c, penalty, secant)
        if key not in self._central:
            velocity = jax.jit(
                lambda w, s, theta, U, dt, g, gradH: central_velocity(
                    self.opt, w, s, theta, U, dt, g, gradH, penalty, secant
                )
            )
            self._central[key] = lambda w, s, theta, U, dt, gradH=None: velocity(
                w, s, theta, U, dt, self.grad(w), self.third_pairs(w, U) if gradH is None else gradH
            )
        return self._central[key]
