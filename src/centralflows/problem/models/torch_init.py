"""The authors' PyTorch initial weights in numpy: torch's CPU generator and the seven constructors.

The authors' main.py calls `torch.manual_seed(seed)` and then builds the model on the CPU; their data
loaders draw from numpy, so the constructors are the only consumers of torch's generator. This module
replays those constructors' draws in the order they happen (construction order, then the custom init
passes over `parameters()` / `modules()`), returns the parameters under their torch names in
`named_parameters()` order (the order of the authors' flat vector `w`), and maps them onto the Flax
parameter trees of `centralflows.problem.models`. The equality with torch is checked by
tests/models/test_torch_init.py against references made by tests/models/make_torch_init_refs.py.
"""

import math

import numpy as np

from centralflows.problem.data.spec import DataSpec

F32 = np.float32

# ---------------------------------------------------------------------------------------------------
# torch's CPU generator (at::CPUGeneratorImpl: mt19937 and the transforms of ATen's CPU kernels)


def _mt19937_key(seed: int) -> np.ndarray:
    """mt19937's init_genrand(seed), as torch.manual_seed(seed) seeds the CPU generator."""
    key = np.empty(624, np.uint32)
    x = seed & 0xFFFFFFFF
    for i in range(624):
        key[i] = x
        x = (1812433253 * (x ^ (x >> 30)) + i + 1) & 0xFFFFFFFF
    return key


class Generator:
    """torch's default CPU generator after `torch.manual_seed(seed)`, with the tensor methods it serves.

    Every method returns a new float32 array of `shape` in torch's (row-major) layout and advances the
    generator exactly as the torch call of the same name does on a contiguous CPU float32 tensor.
    """

    def __init__(self, seed: int):
        if not 0 <= seed < 2**32:
            raise ValueError(f"torch initialisation needs a seed in [0, 2**32), got {seed}")
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": _mt19937_key(seed), "pos": 624}}
        self._cached_normal = None  # normal_distribution<double> draws two values and caches one

    def _u32(self, n: int) -> np.ndarray:
        return self._bits.random_raw(n).astype(np.uint32)

    def _float01(self, n: int) -> np.ndarray:
        # uniform_real_distribution<float>: the low 24 bits of one 32-bit draw, times 2^-24
        return ((self._u32(n) & 0xFFFFFF).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)

    def _double01(self) -> float:
        hi, lo = (int(v) for v in self._u32(2))  # random64 = (first << 32) | second
        return (((hi << 32) | lo) & ((1 << 53) - 1)) * 2.0**-53

    def uniform(self, shape, low: float, high: float) -> np.ndarray:
        """Tensor.uniform_(low, high): x·(high − low) + low with one rounding (an FMA)."""
        lo, hi = np.float32(low), np.float32(high)
        return _fma(self._float01(math.prod(shape)), hi - lo, lo).reshape(shape)

    def normal(self, shape, mean: float, std: float) -> np.ndarray:
        """Tensor.normal_(mean, std): ATen's normal_fill (Box–Muller on blocks of 16) for 16 elements or
        more, else one normal_distribution<double> per element (which caches its second value)."""
        n = math.prod(shape)
        if n < 16:
            out = np.empty(n, np.float32)
            for i in range(n):
                if self._cached_normal is not None:
                    z, self._cached_normal = self._cached_normal, None
                else:
                    u1, u2 = self._double01(), self._double01()
                    r = math.sqrt(-2.0 * math.log1p(-u2))
                    theta = 2.0 * math.pi * u1
                    self._cached_normal = r * math.sin(theta)
                    z = r * math.cos(theta)
                out[i] = z * std + mean
            return out.reshape(shape)
        data = self._float01(n)
        m, s = np.float32(mean), np.float32(std)
        full = n // 16 * 16  # blocks are independent: all at once
        data[:full] = _box_muller16(data[:full].reshape(-1, 16), m, s).reshape(-1)
        if n % 16:  # the last 16 values are drawn again and transformed once more
            data[n - 16 :] = _box_muller16(self._float01(16), m, s)
        return data.reshape(shape)

    def kaiming_uniform(self, shape, a: float = math.sqrt(5)) -> np.ndarray:
        """init.kaiming_uniform_(w, a) in fan_in mode: the default weight init of Linear and Conv."""
        gain = math.sqrt(2.0 / (1 + a**2))
        bound = math.sqrt(3.0) * (gain / math.sqrt(_fans(shape)[0]))
        return self.uniform(shape, -bound, bound)

    def default_bias(self, n: int, weight_shape) -> np.ndarray:
        """Linear/Conv reset_parameters' bias: U(±1/√fan_in)."""
        bound = 1 / math.sqrt(_fans(weight_shape)[0])
        return self.uniform((n,), -bound, bound)

    def xavier_uniform(self, shape) -> np.ndarray:
        fan_in, fan_out = _fans(shape)
        bound = math.sqrt(3.0) * math.sqrt(2.0 / float(fan_in + fan_out))
        return self.uniform(shape, -bound, bound)

    def kaiming_normal_fan_out_relu(self, shape) -> np.ndarray:
        return self.normal(shape, 0.0, math.sqrt(2.0) / math.sqrt(_fans(shape)[1]))


def _fans(shape) -> tuple:
    """init._calculate_fan_in_and_fan_out: (in · receptive field, out · receptive field)."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fma(a, b, c) -> np.ndarray:
    """float32 a·b + c as the FMA instructions of torch's AVX2/AVX-512 kernels compute it.

    The product of two float32 is exact in float64; the float64 sum, rounded to float32, is the FMA's
    single rounding unless it lands within 2^-29 relative of a float32 tie (never in the references).
    """
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(F32)


_LOG_P = (
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
)  # Cephes logf


def _log256(x: np.ndarray) -> np.ndarray:
    """log256_ps of ATen's avx_mathfun.h (Cephes logf) for x in (0, 1], with its compiled FMAs."""
    bits = x.view(np.int32)
    e = ((bits >> 23) - 127).astype(F32) + F32(1)
    m = ((bits & ~0x7F800000) | np.array(0.5, F32).view(np.int32)).view(F32)  # mantissa in [0.5, 1)
    small = m < F32(0.707106781186547524)
    e = e - np.where(small, F32(1), F32(0))
    m = (m - F32(1)) + np.where(small, m, F32(0))
    z = m * m
    y = np.full_like(m, F32(_LOG_P[0]))
    for p in _LOG_P[1:]:
        y = _fma(y, m, F32(p))
    y = _fma(y * m, z, e * F32(-2.12194440e-4))
    y = _fma(z, F32(-0.5), y)
    return _fma(e, F32(0.693359375), m + y)


def _sincos256(x: np.ndarray) -> tuple:
    """sincos256_ps of ATen's avx_mathfun.h (Cephes sinf/cosf) for x ≥ 0, with its compiled FMAs."""
    j = (x * F32(1.27323954473516)).astype(np.int32)  # x · 4/π, truncated
    j = (j + 1) & ~1
    y = j.astype(F32)
    for c in (-0.78515625, -2.4187564849853515625e-4, -3.77489497744594108e-8):  # x − y·π/4 in 3 parts
        x = _fma(y, F32(c), x)
    z = x * x
    c = _fma(
        _fma(np.full_like(x, F32(2.443315711809948e-5)), z, F32(-1.388731625493765e-3)),
        z,
        F32(4.166664568298827e-2),
    )
    c = _fma(c * z, z, -(z * F32(0.5))) + F32(1)
    s = _fma(_fma(np.full_like(x, F32(-1.9515295891e-4)), z, F32(8.3321608736e-3)), z, F32(-1.6666654611e-1))
    s = _fma(s * z, x, x)
    first = (j & 2) == 0  # which polynomial is the sine
    sin, cos = np.where(first, s, c), np.where(first, c, s)
    return np.where((j & 4) != 0, -sin, sin), np.where((~(j - 2) & 4) != 0, -cos, cos)


def _box_muller16(u: np.ndarray, mean, std) -> np.ndarray:
    """normal_fill_16_AVX2 on blocks u[..., 16] of uniforms: u[..., :8] → radius, u[..., 8:] → angle.

    This is the path torch takes on every x86 CPU with AVX2 or AVX-512 (its results are the same on
    both); torch's generic build (ATEN_CPU_CAPABILITY=default) uses libm and gives other last bits.
    """
    radius = np.sqrt(F32(-2) * _log256(F32(1) - u[..., :8]))
    sin, cos = _sincos256(F32(2.0 * math.pi) * u[..., 8:])
    return np.concatenate([_fma(radius * cos, std, mean), _fma(radius * sin, std, mean)], axis=-1)


# ---------------------------------------------------------------------------------------------------
# The authors' constructors (src/architectures/*.py at 93cad93, vit_pytorch.SimpleViT), replayed.
# Each returns {torch name: float32 array in torch's layout} in named_parameters() order: a module's own
# parameters before its children's, children in registration order.


def _linear(g: Generator, P: dict, name: str, n_in: int, n_out: int, bias: bool = True):
    """nn.Linear(n_in, n_out) construction: kaiming_uniform_(a=√5) weight, then U(±1/√n_in) bias."""
    P[f"{name}.weight"] = g.kaiming_uniform((n_out, n_in))
    if bias:
        P[f"{name}.bias"] = g.default_bias(n_out, (n_out, n_in))


def _ordered(P: dict, names: list) -> dict:
    assert sorted(P) == sorted(names), set(P) ^ set(names)
    return {k: P[k] for k in names}


def _mlp(g, o, spec):
    sizes = [math.prod(spec.input_shape)] + [o["width"]] * o["depth"] + [spec.num_outputs]
    P = {}
    for i in range(len(sizes) - 1):  # Sequential(Flatten, Linear, act, ..., Linear): Linears at 1, 3, ...
        _linear(g, P, str(2 * i + 1), sizes[i], sizes[i + 1])
    return P


def _cnn(g, o, spec):
    h, w, c = spec.input_shape
    width = o["width"]
    P = {
        "0.weight": g.kaiming_uniform((width, c, 3, 3)),
        "3.weight": g.kaiming_uniform((2 * width, width, 3, 3)),
    }
    _linear(g, P, "7", (h // 4) * (w // 4) * 2 * width, 4 * width, bias=False)
    _linear(g, P, "9", 4 * width, spec.num_outputs)
    return P


def _resnet_blocks(o):
    """(torch prefix, in channels, out channels, stride) of every Block, in construction order."""
    width, blocks = o["width"], []
    for i, size in enumerate(o["stage_sizes"]):
        stride = 1 if i == 0 else 2
        for j in range(size):
            blocks.append(
                (
                    f"stages.{i}.{j}",
                    width if j == 0 else stride * width,
                    stride * width,
                    stride if j == 0 else 1,
                )
            )
        width *= stride
    return blocks, width


def _resnet(g, o, spec):
    h, _, c = spec.input_shape
    blocks, width = _resnet_blocks(o)
    convs = {"in_proj.0.weight": (o["width"], c, 3, 3)}  # construction order = modules() order
    names = ["in_proj.0.weight"]
    for prefix, cin, cout, stride in blocks:
        convs[f"{prefix}.conv1.weight"] = (cout, cin, 3, 3)
        convs[f"{prefix}.conv2.weight"] = (cout, cout, 3, 3)
        names += [
            f"{prefix}.{k}"
            for k in ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias")
        ]
        if stride != 1:
            convs[f"{prefix}.shortcut.0.weight"] = (cout, cin, 3, 3)
            names += [f"{prefix}.shortcut.{k}" for k in ("0.weight", "1.weight", "1.bias")]
    for shape in convs.values():  # Conv2d's own init, overwritten below but drawn
        g.kaiming_uniform(shape)
    pooled = h // 2 ** (len(o["stage_sizes"]) + 1)
    _linear(g, {}, "out_proj", width * pooled**2, spec.num_outputs)  # drawn, then zeroed
    P = {k: g.kaiming_normal_fan_out_relu(shape) for k, shape in convs.items()}
    for prefix, _, cout, stride in blocks:
        for norm in ("bn1", "bn2") + (("shortcut.1",) if stride != 1 else ()):
            P[f"{prefix}.{norm}.weight"] = np.full(cout, 0.0 if norm == "bn2" else 1.0, F32)
            P[f"{prefix}.{norm}.bias"] = np.zeros(cout, F32)
    P["out_proj.weight"] = np.zeros((spec.num_outputs, width * pooled**2), F32)
    P["out_proj.bias"] = np.zeros(spec.num_outputs, F32)
    return _ordered(P, names + ["out_proj.weight", "out_proj.bias"])


def _norm(P: dict, name: str, n: int, kind: str):
    """The authors' TrainableLayerNorm (gamma, beta) or torch.nn.LayerNorm (weight, bias)."""
    one, zero = ("gamma", "beta") if kind == "reference" else ("weight", "bias")
    P[f"{name}.{one}"], P[f"{name}.{zero}"] = np.ones(n, F32), np.zeros(n, F32)


def _vit(g, o, spec):
    p, c, dim, ln = o["patch_size"], spec.input_shape[2], o["dim"], o["layernorm"]
    inner = o["heads"] * o["dim_head"]
    P = {}
    _norm(P, "to_patch_embedding.1", p * p * c, ln)
    _linear(g, P, "to_patch_embedding.2", p * p * c, dim)
    _norm(P, "to_patch_embedding.3", dim, ln)
    _norm(P, "transformer.norm", dim, ln)  # registered before the layers
    for i in range(o["depth"]):
        a, f = f"transformer.layers.{i}.0", f"transformer.layers.{i}.1.net"
        _norm(P, f"{a}.norm", dim, ln)
        _linear(g, P, f"{a}.to_qkv", dim, 3 * inner, bias=False)
        _linear(g, P, f"{a}.to_out", inner, dim, bias=False)
        _norm(P, f"{f}.0", dim, ln)
        _linear(g, P, f"{f}.1", dim, o["mlp_dim"])
        _linear(g, P, f"{f}.3", o["mlp_dim"], dim)
    _linear(g, P, "linear_head", dim, spec.num_outputs)
    for k in ("linear_head.weight", "linear_head.bias"):  # .mul_(init_scale) in float32
        P[k] = P[k] * F32(o["init_scale"])
    return P


def _lstm(g, o, spec):
    P = {"embed.weight": g.normal((spec.vocab_size, o["embed_dim"]), 0.0, 1.0)}
    h, n_in = o["hidden"], o["embed_dim"]
    stdv = 1.0 / math.sqrt(h)
    for i in range(o["layers"]):
        for k, shape in (("Wih", (n_in, 4 * h)), ("Whh", (h, 4 * h)), ("bih", (4 * h,)), ("bhh", (4 * h,))):
            P[f"lstm.layers.{i}.{k}"] = g.uniform(shape, -stdv, stdv)
        n_in = h
    _linear(g, P, "linear", h, spec.num_outputs)
    return P


def _transformer(g, o, spec):
    d, ff, vocab = o["d_model"], o["dim_feedforward"], spec.vocab_size
    g.normal((vocab, d), 0.0, 1.0)  # nn.Embedding's N(0, 1), overwritten by xavier below
    layer = {}  # one TransformerDecoderLayer is built, TransformerDecoder deep-copies it
    for attn in ("self_attn", "multihead_attn"):
        out = {}
        _linear(g, out, "out_proj", d, d)  # MultiheadAttention builds out_proj, then _reset_parameters
        layer[f"{attn}.in_proj_weight"] = g.xavier_uniform((3 * d, d))
        layer[f"{attn}.in_proj_bias"] = np.zeros(3 * d, F32)
        layer[f"{attn}.out_proj.weight"] = out["out_proj.weight"]
        layer[f"{attn}.out_proj.bias"] = np.zeros(d, F32)
    _linear(g, layer, "linear1", d, ff)
    _linear(g, layer, "linear2", ff, d)
    for k in ("norm1", "norm2", "norm3"):
        _norm(layer, k, d, "reference")
    P = {"embedding.weight": None}
    for i in range(o["layers"]):
        P.update({f"decoder.layers.{i}.{k}": v.copy() for k, v in layer.items()})
    _linear(g, P, "output_layer", d, spec.num_outputs)
    for k, v in P.items():  # _init_parameters: xavier on every parameter with 2 or more dimensions
        if k == "embedding.weight" or v.ndim > 1:
            P[k] = g.xavier_uniform((vocab, d) if v is None else v.shape)
    P["output_layer.weight"] = P["output_layer.weight"] * F32(o["weight_multiplier"])
    return P


def _mamba(g, o, spec):
    d, E, N, R, K = o["d_model"], o["expand"] * o["d_model"], o["d_state"], o["dt_rank"], o["d_conv"]
    P = {"embed.weight": g.normal((spec.vocab_size, d), 0.0, 1.0)}
    for i in range(o["layers"]):
        m, built = f"mamba.layers.{i}.mixer", {}
        _linear(g, built, "in_proj", d, 2 * E, bias=False)
        built["conv1d.weight"] = g.kaiming_uniform((E, 1, K))
        built["conv1d.bias"] = g.default_bias(E, (E, 1, K))
        _linear(g, built, "x_proj", E, R + 2 * N, bias=False)
        _linear(g, built, "dt_proj", R, E)
        built["dt_proj.weight"] = g.uniform((E, R), -(R**-0.5), R**-0.5)
        dt = np.exp(g.uniform((E,), 0.0, 1.0) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        dt = np.maximum(dt, 1e-4)  # float64 here; torch's float32 ops may differ in the last bit
        built["dt_proj.bias"] = (dt + np.log(-np.expm1(-dt))).astype(F32)
        P[f"{m}.A_log"] = np.log(np.tile(np.arange(1, N + 1, dtype=F32), (E, 1)))
        P[f"{m}.D"] = np.ones(E, F32)
        _linear(g, built, "out_proj", E, d, bias=False)
        P.update(
            {
                f"{m}.{k}": built[k]
                for k in (
                    "in_proj.weight",
                    "conv1d.weight",
                    "conv1d.bias",
                    "x_proj.weight",
                    "dt_proj.weight",
                    "dt_proj.bias",
                    "out_proj.weight",
                )
            }
        )
        P[f"mamba.layers.{i}.norm.weight"] = np.ones(d, F32)
    P["norm_f.weight"] = np.ones(d, F32)
    _linear(g, P, "linear", d, spec.num_outputs, bias=False)
    if o["reference_init"]:  # self.apply(_init_weights): N(0, 0.02) on Linear/Embedding weights
        for k in P:
            if (
                k == "embed.weight"
                or (k.endswith("proj.weight") and "conv1d" not in k)
                or k == "linear.weight"
            ):
                P[k] = g.normal(P[k].shape, 0.0, 0.02)
            if k.endswith("dt_proj.bias"):
                P[k] = np.zeros_like(P[k])
    P["linear.weight"] = P["linear.weight"] * F32(o["init_scale"])
    return P


_CONSTRUCTORS = {
    "mlp": _mlp,
    "cnn": _cnn,
    "resnet": _resnet,
    "vit": _vit,
    "lstm": _lstm,
    "transformer": _transformer,
    "mamba": _mamba,
}


def torch_parameters(arch: str, options: dict, spec: DataSpec, seed: int) -> dict:
    """The parameters the authors' code builds after `torch.manual_seed(seed)`.

    Args:
        arch: one of centralflows.problem.models.ARCHITECTURES.
        options: the architecture's resolved options (DEFAULTS with overrides).
        spec: the dataset's DataSpec (input shape HWC for images, vocabulary, outputs).
        seed: the run's seed.

    Returns:
        {torch parameter name: float32 array in torch's layout}, in `named_parameters()` order, which
        is also the order of the authors' flat parameter vector.
    """
    return _CONSTRUCTORS[arch](Generator(seed), options, spec)


# ---------------------------------------------------------------------------------------------------
# torch layout → the Flax trees of centralflows.problem.models


def _dense(P: dict, name: str, bias: bool = True) -> dict:
    out = {"kernel": P[f"{name}.weight"].T}
    if bias:
        out["bias"] = P[f"{name}.bias"]
    return out


def _chw_rows(kernel: np.ndarray, c: int, h: int, w: int) -> np.ndarray:
    """Reorders a kernel's input rows from torch's (c, h, w) flatten to the NHWC (h, w, c) flatten."""
    return kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)


def _conv(W: np.ndarray) -> dict:
    return {"kernel": W.transpose(2, 3, 1, 0)}  # [out, in, kh, kw] → [kh, kw, in, out]


def _flax_mlp(P, o, spec):
    h, w, c = spec.input_shape
    layers = [_dense(P, str(2 * i + 1)) for i in range(o["depth"] + 1)]
    layers[0]["kernel"] = _chw_rows(layers[0]["kernel"], c, h, w)
    return {f"Dense_{i}": layer for i, layer in enumerate(layers)}


def _flax_cnn(P, o, spec):
    h, w, _ = spec.input_shape
    hidden = _dense(P, "7", bias=False)
    hidden["kernel"] = _chw_rows(hidden["kernel"], 2 * o["width"], h // 4, w // 4)
    return {
        "Conv_0": _conv(P["0.weight"]),
        "Conv_1": _conv(P["3.weight"]),
        "Dense_0": hidden,
        "Dense_1": _dense(P, "9"),
    }


def _flax_resnet(P, o, spec):
    blocks, width = _resnet_blocks(o)
    out = {"in_proj": _conv(P["in_proj.0.weight"])}
    for i, (prefix, _, _, stride) in enumerate(blocks):
        gn = lambda k: {"weight": P[f"{prefix}.{k}.weight"], "bias": P[f"{prefix}.{k}.bias"]}  # noqa: B023
        block = {
            "conv1": _conv(P[f"{prefix}.conv1.weight"]),
            "gn1": gn("bn1"),
            "conv2": _conv(P[f"{prefix}.conv2.weight"]),
            "gn2": gn("bn2"),
        }
        if stride != 1:
            block["shortcut_conv"] = _conv(P[f"{prefix}.shortcut.0.weight"])
            block["shortcut_gn"] = gn("shortcut.1")
        out[f"Block_{i}"] = block
    pooled = spec.input_shape[0] // 2 ** (len(o["stage_sizes"]) + 1)
    head = _dense(P, "out_proj")
    head["kernel"] = _chw_rows(head["kernel"], width, pooled, pooled)
    out["out_proj"] = head
    return out


def _flax_vit(P, o, spec):
    if o["layernorm"] == "reference":
        ln_name, keys = "TrainableLayerNorm", (("gamma", "gamma"), ("beta", "beta"))
    else:
        ln_name, keys = "LayerNorm", (("scale", "weight"), ("bias", "bias"))
    ln = lambda name: {f: P[f"{name}.{t}"] for f, t in keys}
    out = {
        f"{ln_name}_0": ln("to_patch_embedding.1"),
        "Dense_0": _dense(P, "to_patch_embedding.2"),
        f"{ln_name}_1": ln("to_patch_embedding.3"),
        f"{ln_name}_2": ln("transformer.norm"),
        "linear_head": _dense(P, "linear_head"),
    }
    for i in range(o["depth"]):
        a, f = f"transformer.layers.{i}.0", f"transformer.layers.{i}.1.net"
        out[f"Attention_{i}"] = {
            f"{ln_name}_0": ln(f"{a}.norm"),
            "Dense_0": _dense(P, f"{a}.to_qkv", False),
            "Dense_1": _dense(P, f"{a}.to_out", False),
        }
        out[f"FeedForward_{i}"] = {
            f"{ln_name}_0": ln(f"{f}.0"),
            "Dense_0": _dense(P, f"{f}.1"),
            "Dense_1": _dense(P, f"{f}.3"),
        }
    return out


def _flax_lstm(P, o, spec):
    out = {"embedding": {"embedding": P["embed.weight"]}, "out": _dense(P, "linear")}
    for i in range(o["layers"]):
        t = f"lstm.layers.{i}"
        out[f"layer{i}"] = {
            "weight_ih": P[f"{t}.Wih"],
            "weight_hh": P[f"{t}.Whh"],
            "bias_ih": P[f"{t}.bih"],
            "bias_hh": P[f"{t}.bhh"],
        }
    return out


def _flax_transformer(P, o, spec):
    def layer(i):
        t = f"decoder.layers.{i}"
        out = {}
        for ours, theirs in (("self_attn", "self_attn"), ("cross_attn", "multihead_attn")):
            out[ours] = {
                "in_proj_kernel": P[f"{t}.{theirs}.in_proj_weight"].T,
                "in_proj_bias": P[f"{t}.{theirs}.in_proj_bias"],
                "out_proj": _dense(P, f"{t}.{theirs}.out_proj"),
            }
        out |= {k: _dense(P, f"{t}.{k}") for k in ("linear1", "linear2")}
        out |= {
            k: {"gamma": P[f"{t}.{k}.gamma"], "beta": P[f"{t}.{k}.beta"]} for k in ("norm1", "norm2", "norm3")
        }
        return out

    out = {"embedding": {"embedding": P["embedding.weight"]}, "out": _dense(P, "output_layer")}
    layers = [layer(i) for i in range(o["layers"])]
    if o["scan_layers"]:
        out["layers"] = _stack(layers)
    else:
        out |= {f"layer{i}": v for i, v in enumerate(layers)}
    return out


def _stack(trees: list):
    if isinstance(trees[0], dict):
        return {k: _stack([t[k] for t in trees]) for k in trees[0]}
    return np.stack(trees)


def _flax_mamba(P, o, spec):
    out = {
        "embedding": {"embedding": P["embed.weight"]},
        "norm_f": {"weight": P["norm_f.weight"]},
        "lm_head": _dense(P, "linear", bias=False),
    }
    for i in range(o["layers"]):
        m = f"mamba.layers.{i}.mixer"
        out[f"layer{i}"] = {
            "mixer": {
                "A_log": P[f"{m}.A_log"],
                "D": P[f"{m}.D"],
                "conv_weight": P[f"{m}.conv1d.weight"][:, 0].T,
                "conv_bias": P[f"{m}.conv1d.bias"],
                "dt_proj": _dense(P, f"{m}.dt_proj"),
                "in_proj": _dense(P, f"{m}.in_proj", False),
                "x_proj": _dense(P, f"{m}.x_proj", False),
                "out_proj": _dense(P, f"{m}.out_proj", False),
            },
            "norm": {"weight": P[f"mamba.layers.{i}.norm.weight"]},
        }
    return out


_TO_FLAX = {
    "mlp": _flax_mlp,
    "cnn": _flax_cnn,
    "resnet": _flax_resnet,
    "vit": _flax_vit,
    "lstm": _flax_lstm,
    "transformer": _flax_transformer,
    "mamba": _flax_mamba,
}


def to_flax(arch: str, options: dict, spec: DataSpec, parameters: dict, dtype=F32) -> dict:
    """Maps torch-layout `parameters` (see torch_parameters) onto the Flax params tree of `arch`.

    Linear weights are transposed, convolution kernels go [out, in, kh, kw] → [kh, kw, in, out], and
    the Linear after a flatten (MLP input, CNN hidden, ResNet head) has its rows reordered from torch's
    (c, h, w) flatten to the NHWC (h, w, c) flatten, so the network computes the same function.
    """
    tree = _TO_FLAX[arch](parameters, options, spec)
    return _map(lambda a: np.ascontiguousarray(a, dtype), tree)


def _map(fn, tree):
    return {k: _map(fn, v) for k, v in tree.items()} if isinstance(tree, dict) else fn(tree)


def unflatten_torch_vector(arch: str, options: dict, spec: DataSpec, w: np.ndarray) -> dict:
    """Splits the authors' flat parameter vector (`named_parameters()` concatenated, each raveled in
    torch's layout) into {torch name: array}.

    Raises:
        ValueError: `w` does not have the architecture's number of parameters.
    """
    shapes = {k: v.shape for k, v in torch_parameters(arch, options, spec, 0).items()}
    n = sum(math.prod(s) for s in shapes.values())
    w = np.asarray(w).reshape(-1)
    if w.size != n:
        raise ValueError(f"the checkpoint's w has {w.size} entries, but {arch} with these options has {n}")
    out, i = {}, 0
    for k, s in shapes.items():
        out[k] = w[i : i + math.prod(s)].reshape(s)
        i += math.prod(s)
    return out
