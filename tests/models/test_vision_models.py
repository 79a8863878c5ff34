"""Vision architectures: parameter counts, shapes, reference quirks and third derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.derivatives import hvp, third_derivative
from centralflows.problem.build import build_model, build_problem
from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models import get_architecture
from centralflows.problem.models.resnet import GroupNorm, conv3x3
from centralflows.problem.models.vit import LayerNorm

CIFAR4 = DataSpec(kind="image", input_shape=(32, 32, 3), num_outputs=4)
SMALL = {
    "mlp": {"width": 8},
    "cnn": {"width": 4},
    "resnet": {"width": 4, "stage_sizes": (1, 1)},
    "vit": {"dim": 16, "depth": 1, "heads": 2, "dim_head": 8, "mlp_dim": 32, "patch_size": 8},
}


def count_params(model, spec=CIFAR4):
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *spec.input_shape)))
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))


@pytest.mark.parametrize(
    "arch, expected", [("mlp", 853_508), ("cnn", 544_100), ("resnet", 293_300), ("vit", 661_412)]
)
def test_parameter_counts_of_the_reference_defaults(arch, expected):
    assert count_params(build_model({"name": arch}, CIFAR4)) == expected


def test_vit_head_norm_placement_keeps_the_count():
    assert count_params(build_model({"name": "vit", "final_norm": "after_pool"}, CIFAR4)) == 661_412


def init_and_apply(model, x):
    """(params, outputs) in one compiled call: far cheaper on CPU than op-by-op eager init."""
    return jax.jit(lambda key: (p := model.init(key, x[:1]), model.apply(p, x)))(jax.random.PRNGKey(0))


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(SMALL))
def test_forward_shape_finite_and_zero_heads(arch):
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 32, 32, 3))
    params, out = init_and_apply(build_model({"name": arch, **SMALL[arch]}, CIFAR4), x)
    assert out.shape == (3, 4)
    assert bool(jnp.all(jnp.isfinite(out)))
    if arch in ("resnet", "vit"):  # zero-initialised heads
        np.testing.assert_array_equal(out, 0.0)
    else:
        assert float(jnp.abs(out).max()) > 0
    if arch == "resnet":
        params = params["params"]
        np.testing.assert_array_equal(params["out_proj"]["kernel"], 0.0)
        np.testing.assert_array_equal(params["out_proj"]["bias"], 0.0)
        for block in ("Block_0", "Block_1"):
            np.testing.assert_array_equal(params[block]["gn2"]["weight"], 0.0)
            np.testing.assert_array_equal(params[block]["gn1"]["weight"], 1.0)
        assert params["Block_1"]["shortcut_conv"]["kernel"].shape == (3, 3, 4, 8)  # 3x3 despite the name


def test_resnet_conv_init_is_kaiming_normal_fan_out():
    conv = conv3x3(64)
    kernel = jax.jit(conv.init)(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 32)))["params"]["kernel"]
    assert float(jnp.std(kernel)) == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.03)


def test_pytorch_default_linear_init_bound():
    model = build_model({"name": "mlp", "width": 16}, CIFAR4)
    params = init_and_apply(model, jnp.zeros((1, 32, 32, 3)))[0]["params"]["Dense_0"]
    bound = 1 / np.sqrt(3072)  # U(±1/sqrt(fan_in)) for weight and bias
    assert 0.99 * bound < float(jnp.abs(params["kernel"]).max()) <= bound
    assert 0 < float(jnp.abs(params["bias"]).max()) <= bound


def test_vit_layernorm_kinds():
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 7)) * 3 + 1
    x_np = np.asarray(x)
    centred = x_np - x_np.mean(-1, keepdims=True)
    reference = init_and_apply(LayerNorm("reference"), x)[1]
    np.testing.assert_allclose(reference, centred / (x_np.std(-1, ddof=1, keepdims=True) + 1e-6), rtol=1e-5)
    standard = init_and_apply(LayerNorm("standard"), x)[1]
    np.testing.assert_allclose(standard, centred / np.sqrt(x_np.var(-1, keepdims=True) + 1e-5), rtol=1e-5)
    with pytest.raises(ValueError, match="valid names: reference, standard"):
        LayerNorm("rms")


def test_groupnorm_is_per_sample_over_contiguous_channel_groups():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 8))
    gn = GroupNorm(groups=2)
    out = init_and_apply(gn, x)[1]
    group = np.asarray(x[0, :, :, 4:])  # second group of the first sample
    expected = (group - group.mean()) / np.sqrt(group.var(ddof=1) + 1e-6)
    np.testing.assert_allclose(out[0, :, :, 4:], expected, rtol=1e-5, atol=1e-5)


def test_unknown_architecture_and_option_errors():
    with pytest.raises(ValueError, match="valid names: mlp, cnn, resnet, vit"):
        get_architecture("resnet18")
    with pytest.raises(ValueError, match="unknown architecture 'mlp' option.*widht.*valid options: width"):
        build_model({"name": "mlp", "widht": 3}, CIFAR4)
    with pytest.raises(ValueError, match="valid names: gelu, silu, relu"):
        count_params(build_model({"name": "mlp", "activation": "tanh"}, CIFAR4))


@pytest.mark.slow
def test_third_derivative_matches_finite_difference_of_hvps(x64):
    """On a tiny ViT, whose reference LayerNorm is the third-derivative gotcha of REFERENCE §1.10."""
    arch = {"name": "vit", **SMALL["vit"], "patch_size": 16, "init_scale": 1.0}  # nonzero head
    problem = build_problem({"name": "synthetic-cifar10", "n": 4, "n_test": 4}, arch, dtype=jnp.float64)
    w = problem.w0
    u, v = jax.random.normal(jax.random.PRNGKey(2), (2, w.shape[0]), jnp.float64)
    u, v = u / jnp.linalg.norm(u), v / jnp.linalg.norm(v)
    loss_fn = problem.loss_fn
    assert w.dtype == jnp.float64 and loss_fn(w).dtype == jnp.float64
    assert float(jnp.abs(problem.train_outputs(w)).max()) > 0  # init_scale 1: the head is not zero

    t = jax.jit(third_derivative, static_argnums=0)(loss_fn, w, u, v)
    eps = 1e-5
    hvp_u = jax.jit(lambda w: hvp(loss_fn, w, u))
    fd = (hvp_u(w + eps * v) - hvp_u(w - eps * v)) / (2 * eps)
    assert bool(jnp.all(jnp.isfinite(t)))
    assert float(jnp.linalg.norm(t)) > 0
    np.testing.assert_allclose(t, fd, rtol=0, atol=1e-6 * float(jnp.abs(t).max()))
