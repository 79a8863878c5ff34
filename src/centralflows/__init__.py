"""Central flows for gradient descent, Scalar RMSProp and RMSProp, in JAX."""

__version__ = "0.1.0"
