"""Registry of the seven architectures; each module has DEFAULTS and build(options, spec).

A module may also set CPU_HVP_BATCHING = "unroll": what `eig.hvp_batching: auto` runs on XLA:CPU (its
Hessian-vector products one vector at a time in one program, which ran faster there than vmapped for
the MLP and the convolutional networks: bench/README.md, "Vectors one by one"); without it (the
sequence models, whose time loops each product would repeat), or with ghost batches, "vmap".
"""

from centralflows.problem.names import module_named

ARCHITECTURES = ("mlp", "cnn", "resnet", "vit", "lstm", "transformer", "mamba")


def get_architecture(name: str):
    """Returns the module of architecture `name` (it defines `DEFAULTS` and `build(options, spec)`).

    Raises:
        ValueError: `name` is not one of ARCHITECTURES (the message lists them).
    """
    return module_named("architecture", name, ARCHITECTURES, "centralflows.problem.models")
