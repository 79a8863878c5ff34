"""Problem: the boundary between data + architecture and the engine, on a flat parameter vector."""

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from centralflows import data, losses, models

NUM_OUTPUTS_LOGGED = 10  # train/test examples whose network outputs are logged


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
    """

    dataset: str
    arch: str
    w0: jax.Array
    loss_fn: Callable
    train_metrics: Callable
    test_metrics: Callable
    train_outputs: Callable
    test_outputs: Callable

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


def load_dataset(data_config: dict) -> data.Dataset:
    """Loads the dataset `data_config["name"]` with the other keys as options over its DEFAULTS."""
    name, options = data_config["name"], {k: v for k, v in data_config.items() if k != "name"}
    module = data.get_dataset(name)
    if "root" not in module.DEFAULTS or options.get("root") is None:
        # the run config carries a data root for every dataset (one setting for a whole grid);
        # datasets generated in memory ignore it, and None means the dataset's own default
        options.pop("root", None)
    return module.load(resolve_options(module.DEFAULTS, options, f"dataset '{name}'"))


def build_model(arch_config: dict, spec: data.DataSpec):
    """Builds the Flax module `arch_config["name"]` with the other keys as options over its DEFAULTS."""
    name, options = arch_config["name"], {k: v for k, v in arch_config.items() if k != "name"}
    module = models.get_architecture(name)
    return module.build(resolve_options(module.DEFAULTS, options, f"architecture '{name}'"), spec)


def build_problem(config: dict, dtype=jnp.float32) -> Problem:
    """Builds the Problem of a resolved run config.

    Reads config["data"] and config["arch"] (each a "name" plus options) and config.get("seed", 0),
    which seeds `jax.random.PRNGKey` for the initialisation. Parameters are initialised, cast to
    `dtype` leaf by leaf (so the unravelled pytree keeps `dtype` and float64 derivatives stay float64)
    and flattened with `ravel_pytree`. Float inputs are cast to `dtype`; tokens and labels stay int32.
    """
    ds = load_dataset(config["data"])
    model = build_model(config["arch"], ds.spec)
    criterion = losses.get_criterion(ds.criterion, ds.binary)

    def as_input(x):
        return jnp.asarray(x, dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.int32)

    x_train, x_test = as_input(ds.x_train), as_input(ds.x_test)
    y_train, y_test = jnp.asarray(ds.y_train, jnp.int32), jnp.asarray(ds.y_test, jnp.int32)

    # jit: one compile instead of op-by-op dispatch, much faster for deep models
    params = jax.jit(model.init)(jax.random.PRNGKey(config.get("seed", 0)), x_train[:1])["params"]
    w0, unravel = ravel_pytree(jax.tree.map(lambda p: p.astype(dtype), params))

    def apply(w, x):
        return model.apply({"params": unravel(w)}, x)

    def metrics(x, y):
        def fn(w):
            f = apply(w, x)
            return {"loss": criterion.loss(f, y), "acc": criterion.accuracy(f, y)}

        return fn

    return Problem(
        dataset=ds.name,
        arch=config["arch"]["name"],
        w0=w0,
        loss_fn=lambda w: criterion.loss(apply(w, x_train), y_train),
        train_metrics=metrics(x_train, y_train),
        test_metrics=metrics(x_test, y_test),
        train_outputs=lambda w: apply(w, x_train[:NUM_OUTPUTS_LOGGED]),
        test_outputs=lambda w: apply(w, x_test[:NUM_OUTPUTS_LOGGED]),
    )
