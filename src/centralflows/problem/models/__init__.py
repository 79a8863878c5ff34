"""Registry of the seven architectures; each module has DEFAULTS and build(options, spec)."""

from centralflows.problem.names import module_named

ARCHITECTURES = ("mlp", "cnn", "resnet", "vit", "lstm", "transformer", "mamba")


def get_architecture(name: str):
    """Returns the module of architecture `name` (it defines `DEFAULTS` and `build(options, spec)`).

    Raises:
        ValueError: `name` is not one of ARCHITECTURES (the message lists them).
    """
    return module_named("architecture", name, ARCHITECTURES, "centralflows.problem.models")
