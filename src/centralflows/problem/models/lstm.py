"""LSTM language model for the sorting task (REFERENCE §3.3 `lstm`): 38,020 parameters for vocab 4.

Embedding(vocab, 48) → 2 × LSTM(hidden 48) → Linear(48, vocab). The cells follow torch.nn.LSTM's
equations and layout: per layer W_ih [in, 4h], W_hh [h, 4h] and two bias vectors b_ih, b_hh (the
count 38,020 = 192 + 2·(2·4·48² + 2·4·48) + 196 needs both), gates in the order i, f, g, o.

Two rearrangements of the same arithmetic make its derivatives cheap (bench/README.md, "Derivative
programs of the sequence models"): activations stay time-major ([length, n, ·]) from the token ids to
the logits, so no [n, length] <-> [length, n] transpose of a large array appears in the gradient, its
Hessian-vector products or its third derivatives; and the first layer's input projection is taken on
the embedding table ([vocab, 4h], a few rows) and looked up per token (a one-hot product, see
`layers.one_hot_rows`), instead of on the [n, length, in]
embedded inputs: each row is the same dot product, so the values agree to round-off, but its
derivatives no longer multiply n·length rows for every tangent.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import OneHotEmbed, dense, one_hot_rows, torch_uniform
from centralflows.problem.models.torch_init import dense_of, torch_linear

DEFAULTS = {"embed_dim": 48, "hidden": 48, "layers": 2}


class LSTMLayer(nn.Module):
    """One LSTM layer from a zero state; all parameters U(±1/√hidden) as in PyTorch.

    Called on time-major inputs x [length, n, in], or on an embedding table x [vocab, in] with the token
    ids `tokens` [length, n]: the input projection is then computed per vocabulary entry and gathered.
    Returns the hidden states, time-major: [length, n, hidden].
    """

    hidden: int

    @nn.compact
    def __call__(self, x, tokens=None):
        h4 = 4 * self.hidden
        init = torch_uniform(self.hidden)
        W_ih = self.param("weight_ih", init, (x.shape[-1], h4), jnp.float32)
        W_hh = self.param("weight_hh", init, (self.hidden, h4), jnp.float32)
        b_ih = self.param("bias_ih", init, (h4,), jnp.float32)
        b_hh = self.param("bias_hh", init, (h4,), jnp.float32)
        x_gates = x @ W_ih + b_ih  # input part of all steps at once: [length, n, 4h] or [vocab, 4h]
        if tokens is not None:
            x_gates = one_hot_rows(x_gates, tokens)  # [length, n, 4h]

        def step(carry, xg):
            h, c = carry
            i, f, g, o = jnp.split(xg + h @ W_hh + b_hh, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x_gates.shape[1], self.hidden), x_gates.dtype)
        _, hs = jax.lax.scan(step, (zeros, zeros), x_gates)
        return hs


class LSTM(nn.Module):
    """Token ids [n, length] → logits [n, length, num_outputs]."""

    vocab_size: int
    embed_dim: int
    hidden: int
    layers: int
    num_outputs: int

    @nn.compact
    def __call__(self, tokens):
        # torch.nn.Embedding draws N(0, 1)
        embed = OneHotEmbed(
            self.vocab_size, self.embed_dim, embedding_init=nn.initializers.normal(1.0), name="embedding"
        )
        tokens = tokens.T  # time-major: [length, n]
        if self.layers == 0:
            x = embed(tokens)
        else:
            embed(tokens[:0])  # creates the table (an empty lookup); the first layer reads it whole
            x = LSTMLayer(self.hidden, name="layer0")(embed.embedding, tokens)
        for i in range(1, self.layers):
            x = LSTMLayer(self.hidden, name=f"layer{i}")(x)
        return jnp.swapaxes(dense(self.num_outputs, self.hidden, name="out")(x), 0, 1)


def build(options: dict, spec: DataSpec) -> nn.Module:
    """Builds the LSTM for token inputs; `options` are DEFAULTS with overrides."""
    if spec.kind != "sequence":
        raise ValueError(f"lstm needs a sequence dataset, got kind '{spec.kind}'")
    return LSTM(spec.vocab_size, options["embed_dim"], options["hidden"], options["layers"], spec.num_outputs)


# ---------------------------------------------------------------------------------------------------
# The authors' initialisation (init: torch): their constructor replayed, and the map of its torch
# parameter names onto this module's Flax tree (centralflows.problem.models.torch_init).


def torch_parameters(g, o, spec) -> dict:
    """The authors' constructor replayed on torch's generator `g`: {torch name: float32 array in torch's
    layout} in `named_parameters()` order (see centralflows.problem.models.torch_init)."""
    P = {"embed.weight": g.normal((spec.vocab_size, o["embed_dim"]), 0.0, 1.0)}
    h, n_in = o["hidden"], o["embed_dim"]
    stdv = 1.0 / math.sqrt(h)
    for i in range(o["layers"]):
        for k, shape in (("Wih", (n_in, 4 * h)), ("Whh", (h, 4 * h)), ("bih", (4 * h,)), ("bhh", (4 * h,))):
            P[f"lstm.layers.{i}.{k}"] = g.uniform(shape, -stdv, stdv)
        n_in = h
    torch_linear(g, P, "linear", h, spec.num_outputs)
    return P


def to_flax(P, o, spec) -> dict:
    """The torch-layout parameters `P` (see torch_parameters) as this module's Flax params tree."""
    out = {"embedding": {"embedding": P["embed.weight"]}, "out": dense_of(P, "linear")}
    for i in range(o["layers"]):
        t = f"lstm.layers.{i}"
        out[f"layer{i}"] = {
            "weight_ih": P[f"{t}.Wih"],
            "weight_hh": P[f"{t}.Whh"],
            "bias_ih": P[f"{t}.bih"],
            "bias_hh": P[f"{t}.bhh"],
        }
    return out
