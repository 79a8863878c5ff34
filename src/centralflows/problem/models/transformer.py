"""Decoder-only Transformer for the sorting task (REFERENCE §3.3 `transformer`): 68,228 parameters.

Embedding(vocab, 32)·√32 + sinusoidal position encoding → 4 × torch.nn.TransformerDecoderLayer
(d 32, 4 heads, FF 128, exact GELU, no dropout, post-LN) → Linear(32, vocab). The reference calls
`decoder(x, x, tgt_mask=causal)`: the memory of every layer's cross-attention is the embedded input
itself and has no mask, so each position's cross-attention sees the future tokens, including its own
target (REFERENCE §1.10 item 7). That quirk is the default; `cross_attention_mask: true` masks it.
LayerNorm is the reference's TrainableLayerNorm.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import OneHotEmbed, torch_uniform
from centralflows.problem.models.norms import TrainableLayerNorm
from centralflows.problem.models.torch_init import F32, dense_of, stack_trees, torch_linear, torch_norm

DEFAULTS = {
    "d_model": 32,
    "heads": 4,
    "layers": 4,
    "dim_feedforward": 128,
    "weight_multiplier": 0.0,  # output weight × this at init (bias kept); 0 = zero-init readout
    "cross_attention_mask": False,  # False: the reference's unmasked cross-attention onto the input
    # True: the layers run in nn.scan (same maths, parameters stacked along a leading layer axis). On
    # CPU, XLA's compile time of HVPs through unrolled chains of LayerNorms grows steeply with depth.
    "scan_layers": True,
}

xavier = nn.initializers.xavier_uniform()  # U(±√(6/(fan_in + fan_out))), torch.nn.init.xavier_uniform_


def sinusoidal_encoding(length: int, d: int) -> np.ndarray:
    """[length, d]: sin at even features, cos at odd ones, frequencies 10000^(−2i/d) (PyTorch tutorial)."""
    position = np.arange(length)[:, None]
    freq = np.exp(np.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe = np.zeros((length, d), np.float32)
    pe[:, 0::2] = np.sin(position * freq)
    pe[:, 1::2] = np.cos(position * freq)
    return pe


class MultiheadAttention(nn.Module):
    """torch.nn.MultiheadAttention: q, k, v from one packed projection [d, 3d], then an output Linear.

    Xavier-uniform on the packed matrix has bound √(6/(d + 3d)), smaller than on three separate d×d
    matrices; the reference initialises the packed one. Biases start at zero as in PyTorch.
    """

    heads: int

    @nn.compact
    def __call__(self, x, memory, causal: bool):
        n, t, d = x.shape
        hd = d // self.heads
        W = self.param("in_proj_kernel", xavier, (d, 3 * d), jnp.float32)
        b = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,), jnp.float32)
        q = x @ W[:, :d] + b[:d]
        k = memory @ W[:, d : 2 * d] + b[d : 2 * d]
        v = memory @ W[:, 2 * d :] + b[2 * d :]
        q, k, v = (a.reshape(n, a.shape[1], self.heads, hd) for a in (q, k, v))  # heads = feature chunks
        scores = jnp.einsum("nqhc,nkhc->nhqk", q, k) / math.sqrt(hd)
        if causal:
            allowed = np.tril(np.ones((t, memory.shape[1]), bool))
            scores = jnp.where(allowed, scores, -jnp.inf)
        out = jnp.einsum("nhqk,nkhc->nqhc", jax.nn.softmax(scores, axis=-1), v).reshape(n, t, d)
        return nn.Dense(d, kernel_init=xavier, bias_init=nn.initializers.zeros, name="out_proj")(out)


class DecoderLayer(nn.Module):
    """torch.nn.TransformerDecoderLayer, norm_first=False: LN(x + SA(x)), LN(x + CA(x, m)), LN(x + FF(x))."""

    heads: int
    dim_feedforward: int
    cross_attention_mask: bool

    @nn.compact
    def __call__(self, x, memory):
        """Returns (x, None), the (carry, output) pair that nn.scan expects."""
        d = x.shape[-1]
        x = TrainableLayerNorm(name="norm1")(
            x + MultiheadAttention(self.heads, name="self_attn")(x, x, causal=True)
        )
        cross = MultiheadAttention(self.heads, name="cross_attn")(x, memory, causal=self.cross_attention_mask)
        x = TrainableLayerNorm(name="norm2")(x + cross)
        # FF Linear biases keep PyTorch's default U(±1/√fan_in); xavier replaces only the weights
        h = nn.Dense(self.dim_feedforward, kernel_init=xavier, bias_init=torch_uniform(d), name="linear1")(x)
        h = nn.Dense(d, kernel_init=xavier, bias_init=torch_uniform(self.dim_feedforward), name="linear2")(
            jax.nn.gelu(h, approximate=False)
        )
        return TrainableLayerNorm(name="norm3")(x + h), None


class Transformer(nn.Module):
    """Token ids [n, length] → logits [n, length, num_outputs]."""

    vocab_size: int
    d_model: int
    heads: int
    layers: int
    dim_feedforward: int
    weight_multiplier: float
    cross_attention_mask: bool
    scan_layers: bool
    num_outputs: int

    @nn.compact
    def __call__(self, tokens):
        d = self.d_model
        x = OneHotEmbed(self.vocab_size, d, embedding_init=xavier, name="embedding")(tokens) * math.sqrt(d)
        x = x + sinusoidal_encoding(tokens.shape[1], d)
        memory = x  # decoder(x, x, ...): every layer cross-attends to the embedded input
        layer_args = (self.heads, self.dim_feedforward, self.cross_attention_mask)
        if self.scan_layers:  # one layer body in the compiled program; parameters stacked [layers, ...]
            Layers = nn.scan(
                DecoderLayer,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=nn.broadcast,
                length=self.layers,
            )
            x, _ = Layers(*layer_args, name="layers")(x, memory)
        else:
            for i in range(self.layers):
                x, _ = DecoderLayer(*layer_args, name=f"layer{i}")(x, memory)
        scaled_xavier = lambda key, shape, dtype=jnp.float32: (
            self.weight_multiplier * xavier(key, shape, dtype)
        )
        return nn.Dense(self.num_outputs, kernel_init=scaled_xavier, bias_init=torch_uniform(d), name="out")(
            x
        )


def build(options: dict, spec: DataSpec) -> nn.Module:
    """Builds the Transformer for token inputs; `options` are DEFAULTS with overrides."""
    if spec.kind != "sequence":
        raise ValueError(f"transformer needs a sequence dataset, got kind '{spec.kind}'")
    if options["d_model"] % options["heads"]:
        raise ValueError(
            f"transformer d_model {options['d_model']} is not divisible by heads {options['heads']}"
        )
    return Transformer(
        spec.vocab_size,
        options["d_model"],
        options["heads"],
        options["layers"],
        options["dim_feedforward"],
        options["weight_multiplier"],
        options["cross_attention_mask"],
        options["scan_layers"],
        spec.num_outputs,
    )


# ---------------------------------------------------------------------------------------------------
# The authors' initialisation (init: torch): their constructor replayed, and the map of its torch
# parameter names onto this module's Flax tree (centralflows.problem.models.torch_init).


def torch_parameters(g, o, spec) -> dict:
    """The authors' constructor replayed on torch's generator `g`: {torch name: float32 array in torch's
    layout} in `named_parameters()` order (see centralflows.problem.models.torch_init)."""
    d, ff, vocab = o["d_model"], o["dim_feedforward"], spec.vocab_size
    g.normal((vocab, d), 0.0, 1.0)  # nn.Embedding's N(0, 1), overwritten by xavier below
    layer = {}  # one TransformerDecoderLayer is built, TransformerDecoder deep-copies it
    for attn in ("self_attn", "multihead_attn"):
        out = {}
        torch_linear(g, out, "out_proj", d, d)  # MultiheadAttention builds out_proj, then _reset_parameters
        layer[f"{attn}.in_proj_weight"] = g.xavier_uniform((3 * d, d))
        layer[f"{attn}.in_proj_bias"] = np.zeros(3 * d, F32)
        layer[f"{attn}.out_proj.weight"] = out["out_proj.weight"]
        layer[f"{attn}.out_proj.bias"] = np.zeros(d, F32)
    torch_linear(g, layer, "linear1", d, ff)
    torch_linear(g, layer, "linear2", ff, d)
    for k in ("norm1", "norm2", "norm3"):
        torch_norm(layer, k, d, "reference")
    P = {"embedding.weight": None}
    for i in range(o["layers"]):
        P.update({f"decoder.layers.{i}.{k}": v.copy() for k, v in layer.items()})
    torch_linear(g, P, "output_layer", d, spec.num_outputs)
    for k, v in P.items():  # _init_parameters: xavier on every parameter with 2 or more dimensions
        if k == "embedding.weight" or v.ndim > 1:
            P[k] = g.xavier_uniform((vocab, d) if v is None else v.shape)
    P["output_layer.weight"] = P["output_layer.weight"] * F32(o["weight_multiplier"])
    return P


def to_flax(P, o, spec) -> dict:
    """The torch-layout parameters `P` (see torch_parameters) as this module's Flax params tree."""

    def layer(i):
        t = f"decoder.layers.{i}"
        out = {}
        for ours, theirs in (("self_attn", "self_attn"), ("cross_attn", "multihead_attn")):
            out[ours] = {
                "in_proj_kernel": P[f"{t}.{theirs}.in_proj_weight"].T,
                "in_proj_bias": P[f"{t}.{theirs}.in_proj_bias"],
                "out_proj": dense_of(P, f"{t}.{theirs}.out_proj"),
            }
        out |= {k: dense_of(P, f"{t}.{k}") for k in ("linear1", "linear2")}
        out |= {
            k: {"gamma": P[f"{t}.{k}.gamma"], "beta": P[f"{t}.{k}.beta"]} for k in ("norm1", "norm2", "norm3")
        }
        return out

    out = {"embedding": {"embedding": P["embedding.weight"]}, "out": dense_of(P, "output_layer")}
    layers = [layer(i) for i in range(o["layers"])]
    if o["scan_layers"]:
        out["layers"] = stack_trees(layers)
    else:
        out |= {f"layer{i}": v for i, v in enumerate(layers)}
    return out
