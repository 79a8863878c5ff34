"""A deterministic, learnable CIFAR-shaped stand-in for offline CI ("synthetic-cifar10")."""

import numpy as np

from centralflows.problem.data import Dataset
from centralflows.problem.data.cifar10 import MEAN, STD, image_dataset

DEFAULTS = {"classes": 4, "n": 1000, "n_test": 1000, "criterion": "mse", "noise": 1.0}

_RANK = 3  # rank of each class template per channel: smooth, image-like structure


def _templates(num_classes: int) -> np.ndarray:
    """Unit-variance class templates [num_classes, 32, 32, 3], each a sum of low-rank smooth patterns.

    Drawn from their own generator so class c looks the same whatever n, n_test or classes are.
    """
    rng = np.random.default_rng(1234)
    grid = np.linspace(0, 1, 32)
    freqs = rng.uniform(0.5, 3.0, size=(10, 2, _RANK, 3))[:num_classes]
    phases = rng.uniform(0, 2 * np.pi, size=(10, 2, _RANK, 3))[:num_classes]
    rows = np.sin(2 * np.pi * freqs[:, 0, :, None, :] * grid[:, None] + phases[:, 0, :, None, :])
    cols = np.sin(2 * np.pi * freqs[:, 1, :, None, :] * grid[:, None] + phases[:, 1, :, None, :])
    t = np.einsum("crhk,crwk->chwk", rows, cols)  # [C, 32, 32, 3]
    t -= t.mean(axis=(1, 2, 3), keepdims=True)
    return t / t.std(axis=(1, 2, 3), keepdims=True)


def _raw_split(rng, templates, count, noise):
    """uint8 images whose labels cycle through the classes, so the subset rule has work to do."""
    y = np.arange(count) % len(templates)
    scale = rng.uniform(0.5, 1.5, size=(count, 1, 1, 1))  # per-example contrast keeps it non-trivial
    z = scale * templates[y] + noise * rng.standard_normal((count, 32, 32, 3))
    z /= np.sqrt(13 / 12 + noise**2)  # E[scale²] = 13/12: unit pixel variance before clipping
    # Pixel statistics near CIFAR's, so the shared normalisation gives roughly standardised inputs.
    x = np.clip(np.rint(255 * (MEAN + STD * z)), 0, 255).astype(np.uint8)
    return x, y.astype(np.int32)


def raw_images(count: int, classes: int = 10, noise: float = 1.0, seed: int = 0):
    """`count` raw uint8 images [count, 32, 32, 3] and int32 labels cycling through `classes`, drawn as
    `load` draws them (bench/quick_scale.py packs them into a CIFAR-shaped archive)."""
    return _raw_split(np.random.default_rng(seed), _templates(classes), count, noise)


def load(options: dict) -> Dataset:
    """Generates raw uint8 images and applies the CIFAR subset, normalisation and shuffle.

    Image = class template × random contrast + Gaussian noise (std `noise`, in template units),
    mapped to 0..255 with CIFAR's channel mean and std. Deterministic: generator seeded with 0.

    Args:
        options: DEFAULTS with overrides; "classes" may be "binary" as for cifar10.
    """
    classes = 2 if options["classes"] == "binary" else int(options["classes"])
    templates = _templates(classes)
    rng = np.random.default_rng(0)
    train = _raw_split(rng, templates, options["n"], options["noise"])
    test = _raw_split(rng, templates, options["n_test"], options["noise"])
    return image_dataset("synthetic-cifar10", (*train, *test), options)
