"""The authors' PyTorch initial weights in numpy: torch's CPU generator, the helpers of the
constructors, and the dispatch to each architecture's own.

The authors' main.py calls `torch.manual_seed(seed)` and then builds the model on the CPU; their data
loaders draw from numpy, so the constructors are the only consumers of torch's generator. Each
architecture module `models/<arch>.py` that has an authors' counterpart replays its constructor's draws
in the order they happen (construction order, then the custom init passes over `parameters()` /
`modules()`) in `torch_parameters(g, options, spec)`, which returns the parameters under their torch
names in `named_parameters()` order (the order of the authors' flat vector `w`), and maps them onto its
Flax parameter tree in `to_flax(P, options, spec)`. The equality with torch is checked by
tests/models/test_torch_init.py against references made by tests/models/make_torch_init_refs.py.
"""

import math

import numpy as np

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models import get_architecture

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
# Helpers of the constructors (src/architectures/*.py at 93cad93, vit_pytorch.SimpleViT). A constructor
# returns {torch name: float32 array in torch's layout} in named_parameters() order: a module's own
# parameters before its children's, children in registration order.


def torch_linear(g: Generator, P: dict, name: str, n_in: int, n_out: int, bias: bool = True):
    """nn.Linear(n_in, n_out) construction: kaiming_uniform_(a=√5) weight, then U(±1/√n_in) bias."""
    P[f"{name}.weight"] = g.kaiming_uniform((n_out, n_in))
    if bias:
        P[f"{name}.bias"] = g.default_bias(n_out, (n_out, n_in))


def torch_norm(P: dict, name: str, n: int, kind: str):
    """The authors' TrainableLayerNorm (gamma, beta) or torch.nn.LayerNorm (weight, bias)."""
    one, zero = ("gamma", "beta") if kind == "reference" else ("weight", "bias")
    P[f"{name}.{one}"], P[f"{name}.{zero}"] = np.ones(n, F32), np.zeros(n, F32)


def in_order(P: dict, names: list) -> dict:
    """`P` in the order of `names` (which must be exactly its keys)."""
    assert sorted(P) == sorted(names), set(P) ^ set(names)
    return {k: P[k] for k in names}


# ---------------------------------------------------------------------------------------------------
# Helpers of the layout maps: torch layout → the Flax trees of centralflows.problem.models


def dense_of(P: dict, name: str, bias: bool = True) -> dict:
    """A torch Linear `name` as a Flax Dense: the weight transposed to [in, out]."""
    out = {"kernel": P[f"{name}.weight"].T}
    if bias:
        out["bias"] = P[f"{name}.bias"]
    return out


def chw_rows(kernel: np.ndarray, c: int, h: int, w: int) -> np.ndarray:
    """Reorders a kernel's input rows from torch's (c, h, w) flatten to the NHWC (h, w, c) flatten."""
    return kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)


def conv_of(W: np.ndarray) -> dict:
    """A torch Conv2d weight as a Flax Conv: [out, in, kh, kw] → [kh, kw, in, out]."""
    return {"kernel": W.transpose(2, 3, 1, 0)}


def stack_trees(trees: list):
    """Trees of equal structure → one tree of their leaves stacked on a new first axis (scanned layers)."""
    if isinstance(trees[0], dict):
        return {k: stack_trees([t[k] for t in trees]) for k in trees[0]}
    return np.stack(trees)


# ---------------------------------------------------------------------------------------------------
# Dispatch to the architecture modules


class NoTorchInit(ValueError):
    """The architecture has no authors' (PyTorch) initialisation to replay."""


def authors_module(arch: str):
    """The module of `arch`, which defines `torch_parameters` and `to_flax`.

    Raises:
        NoTorchInit: the module lacks them (a new architecture without an authors' counterpart); the
            message says to use `init: jax` or to add them.
    """
    module = get_architecture(arch)
    missing = [f for f in ("torch_parameters", "to_flax") if not hasattr(module, f)]
    if missing:
        raise NoTorchInit(
            f"architecture '{arch}' has no authors' PyTorch initialisation ({' and '.join(missing)} missing "
            f"in {module.__name__}): use 'init' jax, or add torch_parameters(g, options, spec) and "
            "to_flax(P, options, spec) to its module (README, Extending)"
        )
    return module


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

    Raises:
        NoTorchInit: `arch` has no authors' constructor.
    """
    return authors_module(arch).torch_parameters(Generator(seed), options, spec)


def to_flax(arch: str, options: dict, spec: DataSpec, parameters: dict, dtype=F32) -> dict:
    """Maps torch-layout `parameters` (see torch_parameters) onto the Flax params tree of `arch`.

    Linear weights are transposed, convolution kernels go [out, in, kh, kw] → [kh, kw, in, out], and
    the Linear after a flatten (MLP input, CNN hidden, ResNet head) has its rows reordered from torch's
    (c, h, w) flatten to the NHWC (h, w, c) flatten, so the network computes the same function.
    """
    tree = authors_module(arch).to_flax(parameters, options, spec)
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


def flax_vector(arch: str, options: dict, spec: DataSpec, w: np.ndarray) -> np.ndarray:
    """The authors' flat vector `w` (see unflatten_torch_vector) as this package's flat parameter vector:
    the Flax params in `jax.flatten_util.ravel_pytree`'s order (dict keys sorted), in float64."""
    parameters = unflatten_torch_vector(arch, options, spec, np.asarray(w, np.float64))
    return _ravel(to_flax(arch, options, spec, parameters, np.float64))


def _ravel(tree) -> np.ndarray:
    if isinstance(tree, dict):
        return np.concatenate([_ravel(tree[k]) for k in sorted(tree)])
    return tree.reshape(-1)
