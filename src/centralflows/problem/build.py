"""Problem: the boundary between data + architecture and the engine, on a flat parameter vector."""

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from centralflows.problem import losses, models
from centralflows.problem.data import Dataset, DataSpec, get_dataset

NUM_OUTPUTS_LOGGED = 10  # train/test examples whose network outputs are logged
INITS = ("torch", "jax")


@dataclass(frozen=True)
class Problem:
    """A full-batch training problem seen as functions of the flat parameter vector `w`.

    Attributes:
        dataset: dataset name recorded in every output ("cifar10", "synthetic-cifar10", "sorting").
        arch: architecture name.
        w0: initial flat parameters, shape (d,).
        loss_fn: w -> scalar full-batch train loss; jit-able and differentiable three times.
        train_metrics, test_metrics: w -> {"loss": scalar, "acc": scalar} on the whole split.
        train_outputs, test_outputs: w -> network outputs on the first 10 examples of the split.
        spec: the dataset's DataSpec.
    """

    dataset: str
    arch: str
    w0: jax.Array
    loss_fn: Callable
    train_metrics: Callable
    test_metrics: Callable
    train_outputs: Callable
    test_outputs: Callable
    spec: DataSpec | None = None

    @property
    def n_params(self) -> int:
        return self.w0.shape[0]


def resolve_options(defaults: dict, options: dict, what: str) -> dict:
    """Returns `defaults` updated by `options`.

    Raises:
        ValueError: an option is not in `defaults` (the message names it and the valid ones).
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown {what} option(s) {', '.join(unknown)}; valid options: {', '.join(defaults)}"
        )
    return {**defaults, **options}


def load_dataset(data_config: dict) -> Dataset:
    """Loads the dataset `data_config["name"]` with the other keys as options over its DEFAULTS."""
    name = data_config["name"]
    options = {k: v for k, v in data_config.items() if k not in ("name", "ghost_batch_size")}
    module = get_dataset(name)
    if "root" not in module.DEFAULTS or options.get("root") is None:
        # the run config carries a data root for every dataset (one setting for a whole grid);
        # datasets generated in memory ignore it, and None means the dataset's own default
        options.pop("root", None)
    return module.load(resolve_options(module.DEFAULTS, options, f"dataset '{name}'"))


def build_model(arch_config: dict, spec: DataSpec):
    """Builds the Flax module `arch_config["name"]` with the other keys as options over its DEFAULTS."""
    name, options = arch_options(arch_config)
    return models.get_architecture(name).build(options, spec)


def arch_options(arch_config: dict) -> tuple:
    """(name, options): the architecture's name and its DEFAULTS updated by `arch_config`'s other keys."""
    name, options = arch_config["name"], {k: v for k, v in arch_config.items() if k != "name"}
    return name, resolve_options(models.get_architecture(name).DEFAULTS, options, f"architecture '{name}'")


def initial_params(model, spec: DataSpec, x, arch: dict, seed: int = 0, init: str = "torch") -> dict:
    """The Flax params the run starts from, of `model`: the architecture `arch` (a name and options).

    init "torch" (default): the parameters the authors' code builds after torch.manual_seed(seed),
    reproduced in numpy (centralflows.problem.models.torch_init) and mapped onto the Flax layout. "jax":
    model.init with jax.random.PRNGKey(seed), the same distributions from JAX's generator.
    """
    if init == "jax":  # jit: one compile instead of op-by-op dispatch, much faster for deep models
        return jax.jit(model.init)(jax.random.PRNGKey(seed), x)["params"]
    if init != "torch":
        raise ValueError(f"unknown init '{init}'; valid names: {', '.join(INITS)}")
    from centralflows.problem.models import torch_init

    name, options = arch_options(arch)
    params = torch_init.to_flax(name, options, spec, torch_init.torch_parameters(name, options, spec, seed))
    template = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
    if jax.tree.structure(template) != jax.tree.structure(params) or any(
        a.shape != b.shape for a, b in zip(jax.tree.leaves(template), jax.tree.leaves(params), strict=True)
    ):
        raise AssertionError(f"torch init of {name} does not match its Flax parameters")  # a bug, not input
    return params


def ghost_batched_loss(loss: Callable, apply: Callable, x, y, size: int) -> Callable:
    """w -> the full-batch `loss(apply(w, x), y)`, evaluated `size` examples at a time.

    The examples are cut into chunks of `size` (the last one shorter, as the authors' ghost batches) and
    each chunk's masked mean is weighted by its share of the unmasked rows, so the value is the
    full-batch loss up to round-off. The full chunks run in a `lax.scan` whose body is rematerialised
    (`jax.checkpoint`): gradients, Hessian-vector products and third derivatives then hold one chunk's
    activations at a time instead of all n examples'.
    """
    n = x.shape[0]
    full = n - n % size
    rows = np.asarray(y != losses.MASK).reshape(n, -1).sum(axis=1)  # unmasked rows per example
    share = rows / rows.sum()
    xs = x[:full].reshape(full // size, size, *x.shape[1:])
    ys = y[:full].reshape(full // size, size, *y.shape[1:])
    weights, rest = share[:full].reshape(full // size, size).sum(axis=1), share[full:].sum()

    @jax.checkpoint
    def chunk(w, xc, yc):
        return loss(apply(w, xc), yc)

    def fn(w):
        def body(total, c):
            xc, yc, weight = c
            return total + weight * chunk(w, xc, yc), None

        total, _ = jax.lax.scan(body, jnp.zeros((), w.dtype), (xs, ys, jnp.asarray(weights, w.dtype)))
        if full < n:
            total = total + jnp.asarray(rest, w.dtype) * chunk(w, x[full:], y[full:])
        return total

    return fn


def build_problem(data: dict, arch: dict, seed: int = 0, init: str = "torch", dtype=jnp.float32) -> Problem:
    """Builds the Problem of a dataset and an architecture (each a "name" plus options).

    `seed` and `init` choose the initial parameters (see initial_params). data["ghost_batch_size"]
    (default -1: all examples at once) evaluates the train loss in chunks of that many examples
    (ghost_batched_loss). Parameters are initialised, cast to
    `dtype` leaf by leaf (so the unravelled pytree keeps `dtype` and float64 derivatives stay float64)
    and flattened with `ravel_pytree`. Float inputs are cast to `dtype`; tokens and labels stay int32.
    """
    ds = load_dataset(data)
    model = build_model(arch, ds.spec)
    criterion = losses.get_criterion(ds.criterion, ds.binary)

    def as_input(x):
        return jnp.asarray(x, dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.int32)

    x_train, x_test = as_input(ds.x_train), as_input(ds.x_test)
    y_train, y_test = jnp.asarray(ds.y_train, jnp.int32), jnp.asarray(ds.y_test, jnp.int32)

    params = initial_params(model, ds.spec, x_train[:1], arch, seed, init)
    w0, unravel = ravel_pytree(jax.tree.map(lambda p: p.astype(dtype), params))

    def apply(w, x):
        return model.apply({"params": unravel(w)}, x)

    def metrics(x, y):
        def fn(w):
            f = apply(w, x)
            return {"loss": criterion.loss(f, y), "acc": criterion.accuracy(f, y)}

        return fn

    ghost = data.get("ghost_batch_size", -1)
    if 0 < ghost < x_train.shape[0]:
        loss_fn = ghost_batched_loss(criterion.loss, apply, x_train, y_train, ghost)
    else:
        loss_fn = lambda w: criterion.loss(apply(w, x_train), y_train)  # noqa: E731

    return Problem(
        dataset=ds.name,
        arch=arch["name"],
        w0=w0,
        loss_fn=loss_fn,
        train_metrics=metrics(x_train, y_train),
        test_metrics=metrics(x_test, y_test),
        train_outputs=lambda w: apply(w, x_train[:NUM_OUTPUTS_LOGGED]),
        test_outputs=lambda w: apply(w, x_test[:NUM_OUTPUTS_LOGGED]),
        spec=ds.spec,
    )
