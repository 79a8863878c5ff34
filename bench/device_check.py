"""The GPU device check: what the paper grid needs to know of a GPU, measured in one offline call.

    bash bench/gpu.sh [--out DIR] [--resume] [--budget 450] [--parts hvp,memory,check,steps] [--archs ..]
    bash bench/gpu.sh --cpu-test [--out DIR]     # the same script on CPU, at small sizes

It runs on a bare machine with nothing fetched: python3 with JAX and its CUDA plugin, flax, optax,
numpy, h5py and pyyaml (tqdm for the runner), the project on PYTHONPATH. Per architecture at its paper
n (1000; Mamba 250), CIFAR-10 replaced by its CIFAR-shaped stand-in, float32, it measures:

- hvp: the 1- and 3-vector Hessian-vector product after compilation (wall ms), its compile time and
  XLA's FLOP count of the compiled program (`cost_analysis`), hence the TFLOP/s reached; last, the
  3 products unrolled in one program (`eig.hvp_batching` "unroll", faster than vmapped for the
  convolutional networks on XLA:CPU; "auto" keeps vmap on a GPU until this says otherwise);
- precision: the same 3-vector HVP with TF32 matmuls ("tensorfloat32", JAX's default on Ampere and
  Hopper when nothing is set, and the 3-pass "TF32_TF32_F32_X3"), its relative difference to full
  float32 ("highest") and its time, and the top 3 eigenvalues by the engine's LOBPCG in both (the
  preflight compares JAX's default precision with these on one matmul);
- memory: the peak device memory of the LOBPCG block (max_k = 10 vectors) and of the third-derivative
  program (6 pairs, k_c = 3), in ghost batches (data.ghost_batch_size), in vector chunks
  (eig.chunk_size) and with the full batch; `memory_stats()["peak_bytes_in_use"]` of a fresh process
  (XLA_PYTHON_CLIENT_PREALLOCATE=false) next to XLA's `memory_analysis` of each program; on CPU, which
  has no device memory statistics, XLA's analysis alone;
- steps: one warm step (after the compiling first one) of the discrete process, of the central flow at
  k = 3 forced critical pairs and of the stable flow, with the engine's processes as
  bench/paper_cost.py builds them, and the HVP-equivalents each did;
- check: the first 20 steps of one ci cell on the CPU device and on the GPU in the same process (in full
  float32, and with TF32), losses and effective eigenvalues side by side, with their largest relative
  difference.

Every part runs in its own worker process with a time cap, in the order of ORDER (the most valuable
first); the total stays under `--budget` seconds, and `--resume` runs what an earlier call left.
The figures go to OUT/<label>.json (label `gpu`: bench/results/gpu.json) as each worker reports them,
so a part that fails or runs out of time keeps what it measured, and the others still run; at the end
OUT/resources_<label>.yaml, the workflow's resources table (plan/resources.py) built from the steps.
`--cpu-test` runs the same on CPU with small networks and n = 16 (every part on the MLP, the HVPs of
the LSTM too; label gpu-script-test-cpu, so it never touches the GPU results) and without the packages
the GPU machines lack (jsonschema).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import queue
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_cost  # noqa: E402  (the cell configs and the table format; it imports nothing heavy)

TESTED_JAX = "0.10.2"  # the JAX this project's tests ran with (the development machines)
ARCHS = ("mlp", "lstm", "transformer", "cnn", "mamba", "vit", "resnet")  # cheap first
BIG = ("vit", "resnet")
PARTS = ("hvp", "memory", "check", "steps")
PRECISIONS = ("tensorfloat32", "TF32_TF32_F32_X3")  # compared with "highest" in every HVP
PROBED = ("default", *PRECISIONS)  # and in one matmul (the preflight): is JAX's default TF32 here?
# Python packages the parts import (module: distribution), and those they can do without
REQUIRED = {"jax": "jax", "jaxlib": "jaxlib", "flax": "flax", "optax": "optax", "numpy": "numpy",
            "yaml": "pyyaml", "h5py": "h5py", "tqdm": "tqdm"}  # fmt: skip
OPTIONAL = {"jsonschema": "jsonschema", "referencing": "referencing", "scipy": "scipy"}
GPU_IMAGE_LACKS = "jsonschema,referencing"  # left out by --cpu-test, as on the GPU machines
MAX_K = 10  # the LOBPCG block: EigConfig.max_k
THIRD_K = 3  # the third-derivative program at k_c = 3: 6 pairs
CHECK_STEPS = 20
# HVP-equivalents per step at the edge of stability, to size jobs from cold-start steps: the discrete
# process warm-starts LOBPCG on the other side of the period-2 oscillation (synth.json, 44.8 HVPs),
# the central flow at k = k_c = 3 with ~5 LOBPCG iterations does k(7 + I) + 4 k_c(k_c + 1) = 84
# (shared/reviews/gpu.md section 3); the stable flow tracks its pairs as the discrete process does.
EDGE_HVP_EQ = {"discrete": 45.0, "stable": 45.0, "central_k3": 84.0}

# (part, arch, cap in seconds): the most valuable first. The HVPs and the precision of two small
# architectures (fast: the latency floor and TF32's error), then of the ViT and ResNet (95 % of the
# grid's FLOPs), their memory (they may not fit), their steps (which size their jobs) and the LSTM's,
# the CPU-vs-GPU check; then the other architectures.
ORDER = [
    ("preflight", None, 90),
    *[("hvp", a, 40) for a in ("mlp", "lstm")],
    *[("hvp", a, 75) for a in BIG],
    *[("memory", a, 90) for a in BIG],
    *[("steps", a, 100) for a in BIG],
    ("steps", "lstm", 50),
    ("check", None, 60),
    *[("hvp", a, 50) for a in ("transformer", "cnn", "mamba")],
    *[("steps", a, 60) for a in ("cnn", "transformer", "mamba", "mlp")],
    *[("memory", a, 40) for a in ("cnn", "mamba", "transformer", "lstm", "mlp")],
]
# --cpu-test (a shared 2-core machine, most of its time compiling): every part on the MLP, and the
# HVP part on a sequence model too; --archs names others
CPU_TEST = ["preflight", "hvp:mlp", "hvp:lstm", "memory:mlp", "steps:mlp", "check"]

# --cpu-test: the same code paths with small networks, n = 16 and ghost batches of 8
TINY_ARCH = {
    "mlp": {"width": 32},
    "cnn": {"width": 4},
    "resnet": {"width": 4, "stage_sizes": [1, 1, 1]},
    "vit": {"dim": 16, "depth": 1, "heads": 2, "dim_head": 8, "mlp_dim": 32},
    "lstm": {"embed_dim": 8, "hidden": 8, "layers": 1},
    "transformer": {"d_model": 8, "heads": 2, "layers": 1, "dim_feedforward": 16},
    "mamba": {"d_model": 8, "layers": 1, "d_state": 4},
}
TINY_N = 16


# ---------------------------------------------------------------------------------------------------
# helpers shared by the driver and the workers


class _Without(importlib.abc.MetaPathFinder):
    """Makes `import name` fail for the given top-level packages, as on a machine that lacks them."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (left out: --without)", name=fullname)
        return None


def without(names: str):
    if names:
        sys.meta_path.insert(0, _Without(n for n in names.split(",") if n))


def error_text(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:400] if lines else ''}"


def load_workflow_config(root: Path = ROOT) -> tuple[dict, str]:
    """config.yaml with the workflow's registries merged in, and a note.

    Validated by its schemas when jsonschema is importable; without it (the GPU machines lack it) the
    same files are read unvalidated: they are the committed ones, validated by this project's tests.
    """
    from centralflows.plan import workflow

    try:
        import jsonschema  # noqa: F401
        import referencing  # noqa: F401
    except ImportError as err:
        config = workflow._read(root / "config.yaml")
        for file, (_, keys) in workflow.REGISTRIES.items():
            registry = workflow._read(root / file)
            config.update({key: registry[key] for key in keys})
        return config, f"config read without schema validation ({error_text(err)})"
    return workflow.load_config(root / "config.yaml"), "config validated by its schemas"


def arch_run(arch: str, tiny: bool, config: dict | None = None) -> tuple[str, dict]:
    """(cell key, run config) of the architecture's GD cell of the paper grid; tiny: the --cpu-test's."""
    config = config or load_workflow_config()[0]
    cells = paper_cost.paper_cells(config)
    key = next(k for k in cells if k.startswith(f"{arch}/gd/"))
    run = cells[key][0]
    if tiny:
        data = {**run["data"], "n": TINY_N, "n_test": TINY_N}
        run = {**run, "data": data, "arch": {**run["arch"], **TINY_ARCH[arch]}}
    return key, run


def resolved(run: dict, chunk_size=None, ghost: int = -1) -> dict:
    """The run as the benchmark builds it (paper_cost.bench_config), with the chunking given."""
    run = {**run, "data": {**run["data"], "ghost_batch_size": ghost}}
    config = paper_cost.bench_config(run)
    config["eig"]["chunk_size"] = chunk_size
    return config


def host_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory() -> dict | None:
    """The device's allocator statistics in MB (None on CPU, which keeps none)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats:
        return None
    mb = lambda key: round(stats[key] / 2**20, 1) if key in stats else None
    return {
        "peak_mb": mb("peak_bytes_in_use"),
        "in_use_mb": mb("bytes_in_use"),
        "limit_mb": mb("bytes_limit"),
    }


def xla_memory(compiled) -> dict | None:
    """XLA's memory analysis of a compiled program, MB: arguments, outputs, scratch and its peak."""
    try:
        m = compiled.memory_analysis()
    except Exception as err:  # not every backend implements it
        return {"error": error_text(err)}
    if m is None:
        return None
    mb = lambda b: round(b / 2**20, 1)
    total = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
    peak = getattr(m, "peak_memory_in_bytes", 0) or 0
    return {"argument_mb": mb(m.argument_size_in_bytes), "output_mb": mb(m.output_size_in_bytes),
            "temp_mb": mb(m.temp_size_in_bytes), "total_mb": mb(total),
            "peak_mb": mb(peak) if peak else None}  # fmt: skip


def fits(xla: dict | None):
    """Raises where XLA's analysis of a program asks for more than the device has: running it would
    only fail, or take the process with it. The message reads as JAX's out-of-memory error does."""
    need, limit = (xla or {}).get("total_mb"), (device_memory() or {}).get("limit_mb")
    if need and limit and need > limit:
        raise MemoryError(
            f"RESOURCE_EXHAUSTED (XLA's analysis): {need:.0f} MB asked, {limit:.0f} MB on the device"
        )


def xla_gflop(compiled) -> float | None:
    """XLA's FLOP count of a compiled program (a loop body counts once: see the README)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:
        return None
    cost = cost[0] if isinstance(cost, list) else cost  # older JAX: one dict per device
    flops = (cost or {}).get("flops")
    return None if flops is None else flops / 1e9


def time_calls(fn, max_s: float, max_calls: int = 5) -> list[float]:
    """Seconds of up to `max_calls` calls of fn (warm), fewer when they would pass `max_s`."""
    import jax

    times = []
    while len(times) < max_calls and (not times or sum(times) + times[-1] < max_s):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times


def compile_timed(fn, *args):
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def precision(name: str | None):
    """The context of one matmul precision ("default": JAX's own choice, as when nothing is set)."""
    import jax

    return jax.default_matmul_precision(None if name == "default" else name)


def rel_diff(a, b) -> float:
    """Largest relative difference between the columns of a and of the reference b."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return float(np.max(np.linalg.norm(a - b, axis=0) / np.maximum(np.linalg.norm(b, axis=0), 1e-300)))


# ---------------------------------------------------------------------------------------------------
# workers: each prints {"partial": result so far} lines and a final {"done": result}


class Worker:
    def __init__(self, spec: dict):
        self.spec = spec
        self.deadline = spec["deadline"]
        self.result: dict = {}

    def left(self) -> float:
        return self.deadline - time.time()

    def emit(self, final: bool = False):
        print(json.dumps({"done" if final else "partial": self.result}, default=str), flush=True)

    def stage(self, path: tuple, fn, need_s: float = 0.0):
        """Runs one measurement into result[path...], guarded: its error is recorded, not raised; it is
        skipped when less than `need_s` seconds are left."""
        node = self.result
        for key in path[:-1]:
            node = node.setdefault(key, {})
        key = path[-1]
        if self.left() < need_s:
            node[key] = {"skipped": f"{self.left():.0f} s left of this part, {need_s:.0f} s needed"}
        else:
            try:
                node[key] = fn()
            except Exception as err:  # what the stage recorded before it failed is kept
                node[key] = {
                    **(node.get(key) if isinstance(node.get(key), dict) else {}),
                    "error": error_text(err),
                }
        self.emit()
        return node[key]


def setup_jax():
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    # the authors' full float32 (their TF32 switches are off): every part but the comparisons
    jax.config.update("jax_default_matmul_precision", "highest")
    return jax


def worker_preflight(w: Worker):
    """Versions, packages, backend, devices and the precision settings this JAX accepts."""
    r = w.result
    r["python"] = {"version": platform.python_version(), "executable": sys.executable}
    r["platform"] = platform.platform()
    r["packages"], r["missing"] = {}, []
    for module, dist in {**REQUIRED, **OPTIONAL}.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        try:
            version = importlib.metadata.version(dist) if found else None
        except importlib.metadata.PackageNotFoundError:
            version = "present (no metadata)"
        r["packages"][module] = version
        if not found and module in REQUIRED:
            r["missing"].append(module)
    for dist in ("jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin", "jax-cuda12-pjrt"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            r["packages"][dist] = importlib.metadata.version(dist)
    names = (
        "JAX_PLATFORMS",
        "XLA_PYTHON_CLIENT_PREALLOCATE",
        "XLA_FLAGS",
        "CUDA_VISIBLE_DEVICES",
        "PYTHONPATH",
    )
    r["env"] = {k: os.environ.get(k) for k in names}
    w.emit()
    if "jax" in r["missing"]:
        return
    jax = setup_jax()
    import jax.numpy as jnp

    r["jax"] = jax.__version__
    r["backend"] = jax.default_backend()
    devices = jax.devices()
    r["devices"] = [str(d) for d in devices]
    r["device_kind"] = devices[0].device_kind
    r["device_memory"] = device_memory()
    try:
        r["cpu_device"] = str(jax.devices("cpu")[0])
    except Exception as err:
        r["cpu_device"] = {"error": error_text(err)}
    r["precisions"], r["matmul_rel_diff_to_highest"] = {}, {}
    a, b = (jax.random.normal(jax.random.PRNGKey(i), (1024, 1024), jnp.float32) for i in (0, 1))
    products = {}
    for name in ("highest", *PROBED):
        try:
            with precision(name):
                products[name] = jax.block_until_ready(jax.jit(lambda a, b: a @ b)(a, b))
            r["precisions"][name] = "ok"
        except Exception as err:
            r["precisions"][name] = error_text(err)
    for name, product in products.items():
        if name != "highest" and "highest" in products:
            r["matmul_rel_diff_to_highest"][name] = rel_diff(product, products["highest"])
    w.emit()
    r["imports"] = {}
    for module in ("centralflows.problem.build", "centralflows.engine.processes",
                   "centralflows.runner.experiment", "centralflows.plan.grid"):  # fmt: skip
        try:
            importlib.import_module(module)
            r["imports"][module] = "ok"
        except Exception as err:
            r["imports"][module] = error_text(err)
    try:
        r["config"] = load_workflow_config()[1]
    except Exception as err:
        r["config"] = {"error": error_text(err)}


def build(config: dict):
    from centralflows.problem.build import build_problem

    start = time.perf_counter()
    problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    return problem, time.perf_counter() - start


def worker_hvp(w: Worker):
    """HVP time, FLOPs and TFLOP/s in full float32; TF32's difference in the HVP and the eigenvalues.
    With the whole batch, or in ghost batches of 100 where its 3-vector HVP runs out of memory."""
    arch, tiny = w.spec["arch"], w.spec["tiny"]
    key, run = arch_run(arch, tiny)
    hvp_at(w, key, run, -1)
    if "RESOURCE_EXHAUSTED" in str(w.result["hvp"].get("3", {}).get("error", "")):
        w.result["out_of_memory_with_full_batch"] = w.result.pop("hvp"), w.result.pop("precision")
        hvp_at(w, key, run, TINY_N // 2 if tiny else 100)
    w.result["device_memory"] = device_memory()
    w.result["host_peak_mb"] = host_peak_mb()


def hvp_at(w: Worker, key: str, run: dict, ghost: int):
    jax = setup_jax()
    import jax.numpy as jnp

    from centralflows.engine.derivatives import batched_hvp

    config = resolved(run, None, ghost)
    problem, build_s = build(config)
    w0, d = problem.w0, problem.n_params
    r = w.result
    r["hvp"] = {"cell": key, "n": config["data"]["n"], "dataset": problem.dataset, "n_params": int(d),
                "data.ghost_batch_size": ghost, "build_s": build_s, "precision": "highest"}  # fmt: skip
    r["precision"] = {}
    w.emit()
    # eig.hvp_batching: the vectors vmapped (what "auto" runs on a GPU) or one product each ("unroll")
    f = {u: jax.jit(lambda w, V, u=u: batched_hvp(problem.loss_fn, w, V, unroll=u)) for u in (False, True)}
    V = {k: jax.random.normal(jax.random.PRNGKey(k), (d, k), w0.dtype) for k in (1, 3)}
    kept = {}

    def hvp(k: int, name: str = "highest", reference=None, unroll: bool = False):
        with precision(name):
            compiled, compile_s = compile_timed(f[unroll], w0, V[k])
            fits(xla_memory(compiled))
            out = jax.block_until_ready(compiled(w0, V[k]))  # first call: allocation, autotuning
            times = time_calls(lambda: compiled(w0, V[k]), max_s=0.5 if w.spec["tiny"] else 3.0)
        if not unroll:
            kept[(k, name)] = compiled, out
        gflop = xla_gflop(compiled)
        best = min(times)
        res = {"compile_s": compile_s, "ms": 1000 * best, "ms_calls": [1000 * t for t in times],
               "gflop": gflop, "tflops": gflop / best / 1000 if gflop else None}  # fmt: skip
        if reference is not None:
            res["rel_diff_to_highest"] = rel_diff(out, reference)
        return res

    for k in (1, 3):
        w.stage(("hvp", str(k)), lambda k=k: hvp(k))
    if (3, "highest") not in kept:
        return
    reference = kept[(3, "highest")][1]
    w.stage(("precision", "tensorfloat32"), lambda: hvp(3, "tensorfloat32", reference))
    r["precision"]["eigs"] = eigs = {}
    for name in ("highest", "tensorfloat32"):
        if (3, name) in kept:
            least = eigs.get("highest", {}).get("iterations", 0)
            w.stage(
                ("precision", "eigs", name), lambda n=name, m=least: top_eigs(kept[(3, n)][0], w0, n, w, m)
            )
    if all("theta" in eigs.get(n, {}) for n in ("highest", "tensorfloat32")):
        a, b = (jnp.asarray(eigs[n]["theta"]) for n in ("tensorfloat32", "highest"))
        eigs["rel_diff"] = [float(x) for x in jnp.abs(a - b) / jnp.abs(b)]
    for name in PRECISIONS[1:]:
        if name in w.spec.get("precisions", PROBED):
            need = 3 if w.spec["tiny"] else 10
            w.stage(("precision", name), lambda name=name: hvp(3, name, reference), need_s=need)
        else:
            r["precision"][name] = {"skipped": "this JAX refuses it on this backend (the preflight)"}
            w.emit()
    # the 3 products unrolled, against the vmapped ones above (rel_diff_to_highest: to their result)
    w.stage(
        ("hvp", "3_unroll"),
        lambda: hvp(3, reference=reference, unroll=True),
        need_s=3 if w.spec["tiny"] else 20,
    )


def top_eigs(compiled, w0, name: str, w: Worker, min_iterations: int = 0) -> dict:
    """The top 3 eigenvalues of the Hessian at w0 by the engine's LOBPCG (its tolerance, 1e-10), from
    the same start in every precision, the whole solve in that precision, until it converges or after
    100 iterations or 10 s (a third of the part's time left), but not before `min_iterations` (those
    of full float32: eigenvalues compare at the same iteration, or once converged). Its programs are
    compiled before the clock starts. Also each pair's relative residual |Av - θv| / (|Av| + |θ|),
    against the engine's test (converged below tol·10·d)."""
    import jax
    import jax.numpy as jnp

    from centralflows.engine import eigs

    d, tol, max_iter = w0.shape[0], 1e-10, 100
    max_s = min(3.0 if w.spec["tiny"] else 10.0, w.left() / 3)
    matvec = lambda X: compiled(w0, X.T).T  # the compiled 3-vector HVP on the rows of a [3, d] block
    X0 = jax.random.normal(jax.random.PRNGKey(7), (3, d), w0.dtype)

    def iteration(state):
        R = eigs._jit_residual(state)
        return eigs._jit_update(state, R, matvec(R), tol)

    with precision(name):
        X = eigs._jit_orthonormalize(X0)
        jax.block_until_ready(iteration(eigs._jit_lobpcg_start(X, matvec(X), tol)))  # compiles
        start = time.perf_counter()
        X = eigs._jit_orthonormalize(X0)
        state = eigs._jit_lobpcg_start(X, matvec(X), tol)
        iters = 0
        while iters < max_iter and not bool(state.converged):
            if iters >= min_iterations and time.perf_counter() - start > max_s:
                break
            state = iteration(state)
            iters += 1
        seconds = time.perf_counter() - start
    X, AX, theta = state.X, state.AX, state.theta
    resid = jnp.linalg.norm(AX - theta[:, None] * X, axis=1) / (jnp.linalg.norm(AX, axis=1) + jnp.abs(theta))
    return {"theta": [float(t) for t in theta], "iterations": iters, "converged": bool(state.converged),
            "s": seconds, "s_per_iteration": seconds / max(iters, 1),
            "relative_residual": [float(x) for x in resid], "converged_below": tol * 10 * d}  # fmt: skip


def worker_memory(w: Worker):
    """Device memory of the LOBPCG block (MAX_K vectors) and the third-derivative program (6 pairs), in
    ghost batches, in vector chunks of 2 and with the whole batch (the order of growing memory, so a
    fresh process's peak after each is that program's, and an out-of-memory full batch comes last)."""
    jax = setup_jax()
    import jax.numpy as jnp

    from centralflows.engine.derivatives import third_derivative_pairs
    from centralflows.engine.eigs import apply_operator_rows

    arch, tiny = w.spec["arch"], w.spec["tiny"]
    key, run = arch_run(arch, tiny)
    n = run["data"]["n"]
    ghost = TINY_N // 2 if tiny else 100 if n > 250 else 50
    r = w.result
    on_device = device_memory() is not None
    r["cell"], r["n"] = key, n
    r["peak_source"] = (
        "device: memory_stats()['peak_bytes_in_use'] after each program (a process-wide peak: a program "
        "below an earlier one leaves it unchanged; xla is each program's own)"
        if on_device
        else "no device memory statistics on this backend: XLA's memory_analysis of each program (xla)"
    )
    r["variants"] = {}
    w.emit()
    built = {}

    def program(variant: str, what: str, chunk, ghost_size):
        if ghost_size not in built:
            built[ghost_size] = build(resolved(run, chunk, ghost_size))[0]
        problem = built[ghost_size]
        w0, d = problem.w0, problem.n_params
        loss = problem.loss_fn
        if what == "lobpcg_block":
            P = jnp.ones_like(w0)
            args = (w0, P, jax.random.normal(jax.random.PRNGKey(1), (MAX_K, d), w0.dtype))
            fn = jax.jit(lambda w, P, V: apply_operator_rows(loss, w, P, V, chunk_size=chunk))
        else:
            U = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(2), (d, THIRD_K), w0.dtype))[0]
            args = (w0, U)
            fn = jax.jit(lambda w, U: third_derivative_pairs(loss, w, U, chunk))
        before = device_memory()
        compiled, compile_s = compile_timed(fn, *args)
        res = {"compile_s": compile_s, "xla": xla_memory(compiled), "gflop": xla_gflop(compiled)}
        r["variants"][variant][what] = res  # XLA's figure stays even if the run below runs out of memory
        fits(res["xla"])
        jax.block_until_ready(compiled(*args))
        times = time_calls(lambda: compiled(*args), max_s=2.0, max_calls=2)
        after = device_memory()
        res["ms"] = 1000 * min(times)
        if res["gflop"]:
            res["tflops"] = res["gflop"] / min(times) / 1000
        if after and after["peak_mb"] is not None:
            res["device_peak_mb"] = after["peak_mb"]
            res["raised_the_peak"] = bool(before and after["peak_mb"] > (before["peak_mb"] or 0))
        res["host_peak_mb"] = host_peak_mb()
        return res

    variants = {f"ghost_batch_{ghost}": (None, ghost), "eig_chunk_2": (2, -1), "full_batch": (None, -1)}
    for variant, (chunk, ghost_size) in variants.items():
        r["variants"][variant] = {"eig.chunk_size": chunk, "data.ghost_batch_size": ghost_size,
                                  "vectors": MAX_K, "pairs": THIRD_K * (THIRD_K + 1) // 2}  # fmt: skip
        for what in ("lobpcg_block", "third_pairs"):
            w.stage(
                ("variants", variant, what),
                lambda v=variant, x=what, c=chunk, g=ghost_size: program(v, x, c, g),
            )
    r["device_memory"] = device_memory()


def measure_steps(w: Worker, name: str, make, max_warm: int = 2) -> dict:
    """The first step (compilation and a cold eigen-solve) and up to `max_warm` warm steps of a process,
    with the HVP-equivalents (HVPs + 2 x third-derivative vectors) each warm step did."""
    import jax

    def one(p):
        measured = p.measure()
        jax.block_until_ready(list(measured.logs.values()))
        p.step(measured)
        jax.block_until_ready(p.w)

    def work(p):
        raw = getattr(p, "raw_eigs", None)
        return p.eigs.hvps + (raw.hvps if raw else 0) + 2 * getattr(p, "third_derivatives", 0)

    start = time.perf_counter()
    p = make()
    one(p)
    res = {"first_step_s": time.perf_counter() - start, "steps_s": [], "hvp_equivalents": []}
    while len(res["steps_s"]) < max_warm and not p.stopped:
        last = res["steps_s"][-1] if res["steps_s"] else res["first_step_s"] / 2
        if res["steps_s"] and w.left() < 2 * last + 5:
            break
        done, start = work(p), time.perf_counter()
        one(p)
        res["steps_s"].append(time.perf_counter() - start)
        res["hvp_equivalents"].append(work(p) - done)
    if res["steps_s"]:
        res["step_s"] = statistics.median(res["steps_s"])
        res["compile_s"] = max(res["first_step_s"] - res["step_s"], 0.0)
        res["hvp_equivalents_per_step"] = statistics.fmean(res["hvp_equivalents"])
    res["stopped"] = p.stopped
    res["device_memory"] = device_memory()
    res["host_peak_mb"] = host_peak_mb()
    return res


def process_makers(kernels, w, s, eig) -> dict:
    """The processes as bench/paper_cost.py builds them: discrete, central at k = 3 forced critical pairs
    (3 tracked, SDCP threshold below every eigenvalue: 6 third-derivative pairs a velocity), stable."""
    from centralflows.engine.eigs import EigConfig
    from centralflows.engine.processes import CentralFlow, Discrete, StableFlow

    fixed = EigConfig.from_dict({**eig.__dict__, "initial_k": 3, "max_k": 3, "track_threshold": None})
    return {
        "discrete": lambda: Discrete(kernels, w, s, eig, 10),
        "central_k3": lambda: CentralFlow(kernels, w, s, fixed, 30, 4, sdcp_threshold=-1e30),
        "stable": lambda: StableFlow(kernels, w, s, eig, 20, 4),
    }


STEP_VARIANTS = ((None, -1), (None, 100), (1, 100))  # (eig.chunk_size, data.ghost_batch_size)


def steps_from(memory: dict) -> int:
    """The first of STEP_VARIANTS to try, from the memory part's results for the architecture: past the
    whole batch where its programs ran out of memory, past ghost batches where those did too."""
    variants = memory.get("variants", {})
    oom = lambda v: any(
        "RESOURCE_EXHAUSTED" in str(p.get("error", "")) for p in v.values() if isinstance(p, dict)
    )
    ghost = next((v for name, v in variants.items() if name.startswith("ghost")), {})
    if not oom(variants.get("full_batch", {})):
        return 0
    return 2 if oom(ghost) else 1


def worker_steps(w: Worker):
    """One warm discrete, central (k = 3 forced) and stable step of the architecture's GD paper cell,
    with the whole batch, or in ghost batches of 100 (and vector chunks of 1) where that runs out of
    memory: here, or in the memory part before (`steps_from`)."""
    setup_jax()
    from centralflows.engine.compiled import Compiled
    from centralflows.engine.optimizers import make_optimizer
    from centralflows.runner.sections import RunConfig

    arch, tiny = w.spec["arch"], w.spec["tiny"]
    key, run = arch_run(arch, tiny)
    r = w.result
    r["cell"] = key
    for chunk, ghost in STEP_VARIANTS[w.spec.get("steps_from", 0) :]:
        ghost = TINY_N // 2 if tiny and ghost > 0 else ghost
        config = resolved(run, chunk, ghost)
        r.update({"n": config["data"]["n"], "eig.chunk_size": chunk, "data.ghost_batch_size": ghost})
        r["processes"] = {}
        problem, r["build_s"] = build(config)
        opt = make_optimizer(**config["opt"])
        kernels = Compiled(problem, opt, config["eig"]["chunk_size"])
        w0, s = problem.w0, opt.init_state(problem.w0)
        r["warm_start"] = warm = max(run.get("warm_start") or 0, 0)
        for _ in range(warm):
            w0, s = opt.step(w0, s, kernels.grad(w0))
        out_of_memory = False
        eig = RunConfig.from_dict(config).process_eig("discrete")
        for name, make in process_makers(kernels, w0, s, eig).items():
            res = w.stage(("processes", name), lambda make=make, name=name: measure_steps(w, name, make))
            out_of_memory |= "RESOURCE_EXHAUSTED" in str(res.get("error", ""))
        if not out_of_memory:
            break
        tried = {"eig.chunk_size": chunk, "data.ghost_batch_size": ghost, "processes": r["processes"]}
        r.setdefault("out_of_memory_with", []).append(tried)
    r["host_peak_mb"] = host_peak_mb()
    r["device_memory"] = device_memory()


def trajectory(config: dict, device, name: str, steps: int, w: Worker) -> dict:
    """The first `steps` steps of a run config's processes on `device` in one precision: per process
    the train loss and the effective eigenvalues at each step (the runner's loop, without its files)."""
    import jax
    import numpy as np

    from centralflows.engine.compiled import Compiled
    from centralflows.engine.optimizers import make_optimizer
    from centralflows.problem.build import build_problem
    from centralflows.runner.experiment import make_processes
    from centralflows.runner.sections import RunConfig

    out = {"device": str(device), "precision": name}
    start = time.perf_counter()
    with jax.default_device(device), precision(name):
        problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
        opt = make_optimizer(**config["opt"])
        kernels = Compiled(problem, opt, config["eig"]["chunk_size"])
        wv, s = problem.w0, opt.init_state(problem.w0)
        for _ in range(max(config["warm_start"], 0)):
            wv, s = opt.step(wv, s, kernels.grad(wv))
        processes = make_processes(RunConfig.from_dict(config), kernels, wv, s)
        logs = {p: {"train_loss": [], "effective_hessian_eigs": []} for p in processes}
        for _ in range(steps):
            measured = {}
            for p, proc in processes.items():
                if proc.stopped:
                    continue
                measured[p] = proc.measure()
                values = measured[p].logs
                logs[p]["train_loss"].append(float(values["train_loss"]))
                eigs = values.get("effective_hessian_eigs")
                logs[p]["effective_hessian_eigs"].append(None if eigs is None else np.asarray(eigs).tolist())
            for p, proc in processes.items():
                if not proc.stopped:
                    proc.step(measured[p])
            if w.left() < 5:
                out["cut_short"] = "part's time cap"
                break
    out["s"] = time.perf_counter() - start
    out["processes"] = logs
    out["stopped"] = {p: proc.stopped for p, proc in processes.items() if proc.stopped}
    return out


def compare(run: dict, reference: dict) -> dict:
    """Largest relative difference of each process's losses and effective eigenvalues to the reference,
    over the steps both have (eigenvalues where both tracked as many)."""
    out = {}
    for p, ref in reference["processes"].items():
        got = run["processes"].get(p, {})
        pairs = list(zip(got.get("train_loss", []), ref["train_loss"], strict=False))
        loss = max((abs(a - b) / max(abs(b), 1e-30) for a, b in pairs), default=None)
        eig, mismatched = None, 0
        for a, b in zip(got.get("effective_hessian_eigs", []), ref["effective_hessian_eigs"], strict=False):
            if a is None or b is None or len(a) != len(b):
                mismatched += a != b
                continue
            for x, y in zip(a, b, strict=True):
                eig = max(eig or 0.0, abs(x - y) / max(abs(y), 1e-30))
        out[p] = {"steps": len(pairs), "train_loss": loss, "effective_hessian_eigs": eig}
        if mismatched:
            out[p]["steps_with_another_eig_count"] = mismatched
    return out


def worker_check(w: Worker):
    """The first CHECK_STEPS steps of one ci cell on the CPU device and on the default device (the GPU)
    in the same process: full float32 on both, then TF32 on the GPU."""
    jax = setup_jax()
    from centralflows.plan.grid import plan
    from centralflows.runner.config import resolve_config

    config, _ = load_workflow_config()
    cell = w.spec["cell"]
    at = plan(config, "ci")
    run = at.runs[at.cells[cell]]
    keep = {k: v for k, v in run.items() if k not in ("load", "checkpoint", "out")}
    rc = resolve_config({**keep, "steps": CHECK_STEPS}).to_dict()
    r = w.result
    r.update({"cell": cell, "scale": "ci", "steps": CHECK_STEPS, "run": keep, "runs": {}, "max_rel_diff": {}})
    cpu, device = jax.devices("cpu")[0], jax.devices()[0]
    r["reference_device"], r["device"] = str(cpu), str(device)
    w.emit()
    ref = w.stage(("runs", "cpu"), lambda: trajectory(rc, cpu, "highest", CHECK_STEPS, w))
    for name in ("highest", "tensorfloat32"):
        label = f"device_{name}"
        need = 10 if name == "highest" else 1.5 * ref.get("s", 0) + 5
        got = w.stage(("runs", label), lambda name=name: trajectory(rc, device, name, CHECK_STEPS, w), need)
        if "processes" in ref and "processes" in got:
            r["max_rel_diff"][label] = compare(got, ref)
            w.emit()
    r["side_by_side"] = side_by_side(ref, r["runs"].get("device_highest", {}))


def side_by_side(ref: dict, other: dict) -> dict:
    """Per process and step: the loss and the top effective eigenvalue on the CPU and on the device."""

    def at(logs: dict, key: str, i: int):
        values = logs.get(key, [])
        value = values[i] if i < len(values) else None
        return value[0] if key == "effective_hessian_eigs" and value else value

    out = {}
    for p, logs in ref.get("processes", {}).items():
        dev = other.get("processes", {}).get(p, {})
        out[p] = [
            {"step": i, "loss_cpu": at(logs, "train_loss", i), "loss_device": at(dev, "train_loss", i),
             "top_eig_cpu": at(logs, "effective_hessian_eigs", i),
             "top_eig_device": at(dev, "effective_hessian_eigs", i)}
            for i in range(len(logs["train_loss"]))
        ]  # fmt: skip
    return out


WORKERS = {"preflight": worker_preflight, "hvp": worker_hvp, "memory": worker_memory,
           "steps": worker_steps, "check": worker_check}  # fmt: skip


def worker_main(spec: dict):
    without(spec.get("without", ""))
    w = Worker(spec)
    try:
        WORKERS[spec["part"]](w)
    except Exception as err:
        w.result["error"] = error_text(err)
        w.emit(final=True)
        raise
    w.emit(final=True)


# ---------------------------------------------------------------------------------------------------
# the driver


def run_worker(spec: dict, timeout: float, log, on_result) -> str:
    """Runs one worker with a hard time limit, passing each result it reports to on_result; its status."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    end = object()

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(end)

    threading.Thread(target=read, daemon=True).start()
    status, done = "", False
    while True:
        remaining = timeout - (time.perf_counter() - start)
        if remaining <= 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            status = f"stopped at its time cap of {timeout:.0f} s (what it measured before is kept)"
            break
        try:
            line = lines.get(timeout=min(1.0, remaining))
        except queue.Empty:
            continue
        if line is end:
            break
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and ("partial" in message or "done" in message):
            done = "done" in message
            on_result(message.get("done", message.get("partial")))
    proc.wait()
    if status:
        return status
    if proc.returncode != 0:
        return f"failed (exit {proc.returncode}; its error is in the result and the log)"
    return "done" if done else "ended without a result"


def write_json(path: Path, data: dict):
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    tmp.replace(path)


def edge_step_s(proc: dict, s_per_hvp: float | None) -> float:
    """A process's step at the edge: its warm step plus the HVP-equivalents it lacks there."""
    name, step = proc["name"], proc["step_s"]
    missing = max(EDGE_HVP_EQ.get(name, 0.0) - proc.get("hvp_equivalents_per_step", 0.0), 0.0)
    if s_per_hvp is None:
        s_per_hvp = step / max(proc.get("hvp_equivalents_per_step", 0.0), 1.0)
    return step + missing * s_per_hvp


def resources_table(entry: dict, cpu_table: dict, cells: list[str], label: str) -> tuple[dict, dict]:
    """The workflow's resources table (bench/paper_cost.py's format) from the steps measured, and how
    each cell was obtained.

    The GD cell of each architecture measured is its steps at the edge (`edge_step_s`: cold-start steps
    do a third of the discrete process's HVPs at the edge), wall seconds; the central flow at k = 3, the
    other processes as paper_cost's ALIASES. The other optimizers' cells of that architecture are the GD
    figures times their ratio in the CPU table, summed over the discrete, stable and central steps
    (the HVP counts that make them differ do not depend on the device). peak_mb is the host's peak RSS
    (what a job asks of the node), device_peak_mb the GPU's.
    """
    table, how = {}, {}
    for cell in cells:
        arch, opt, n = cell.split("/")
        steps = entry.get("steps", {}).get(arch, {})
        procs = steps.get("processes", {})
        if not all("step_s" in procs.get(p, {}) for p in EDGE_HVP_EQ):
            continue
        hvp = entry.get("hvp", {}).get(arch, {})
        per_hvp = {k: hvp.get(str(k), {}).get("ms") for k in (1, 3)}
        s_per_hvp = {"discrete": per_hvp[1] and per_hvp[1] / 1000, "stable": per_hvp[1] and per_hvp[1] / 1000,
                     "central_k3": per_hvp[3] and per_hvp[3] / 3000}  # fmt: skip
        gd = {p: edge_step_s({**procs[p], "name": p}, s_per_hvp[p]) for p in EDGE_HVP_EQ}
        gd_step = {"discrete": gd["discrete"], "stable": gd["stable"], "central": gd["central_k3"]}
        for alias, (base, factor) in paper_cost.ALIASES.items():
            gd_step[alias] = factor * gd_step[base]
        compile_s = max(procs[p].get("compile_s", 0.0) for p in EDGE_HVP_EQ)
        device_peak = max((procs[p].get("device_memory") or {}).get("peak_mb") or 0 for p in EDGE_HVP_EQ)
        peak = steps.get("host_peak_mb") or max(procs[p].get("host_peak_mb", 0) for p in EDGE_HVP_EQ)
        if opt == "gd":
            ratio, source = {p: 1.0 for p in gd_step}, "measured (GD), steps at the edge"
            ratio_compile = ratio_peak = 1.0
        else:
            cpu, base = cpu_table.get(cell), cpu_table.get(f"{arch}/gd/{n}")
            if not cpu or not base:
                continue
            # one ratio for the run's step, not one per process: the CPU table's cold-start steps
            # vary by process more than the work does (mlp RMSProp: discrete 13x GD, central 1.7x)
            main = ("discrete", "stable", "central")
            step = sum(cpu["step_s"][p] for p in main) / sum(base["step_s"][p] for p in main)
            ratio = {p: step for p in gd_step}
            ratio_compile = cpu["compile_s"] / base["compile_s"]
            ratio_peak = cpu["peak_mb"] / base["peak_mb"]
            source = f"the GD cell's figures x {step:.2f}, this cell's step over {arch}/gd/{n}'s on CPU"
        table[cell] = {
            "step_s": {p: round(gd_step[p] * ratio[p], 4) for p in gd_step},
            "compile_s": round(compile_s * ratio_compile, 1),
            "peak_mb": int(math.ceil((peak or 0) * ratio_peak)),
        }
        if device_peak:
            table[cell]["device_peak_mb"] = int(math.ceil(device_peak))
        how[cell] = source
    return {"measured_on": label, "cells": table}, how


def write_resources(path: Path, table: dict, device: str):
    header = (
        f"# Generated by `bash bench/gpu.sh` (bench/device_check.py) on {device} (do not edit by hand):\n"
        "# per paper cell arch/optimizer/n, wall seconds per step of each process (central: at k = 3\n"
        "# critical eigenvalues) at the edge of stability (the measured warm step plus the HVPs it lacks\n"
        "# there), the compile time (first step) and the host's peak resident memory of one run\n"
        "# (device_peak_mb: the GPU's). GD cells are measured; the other optimizers' are the GD figures\n"
        "# times their ratio in the CPU table (bench/results/<label>.json says which). The `run` rule\n"
        "# sizes runtime and mem_mb from it when config.yaml `resources.tables` names it for\n"
        "# `resources.device` (which must be `measured_on`).\n"
    )
    try:
        import yaml

        body = yaml.safe_dump(table, sort_keys=True)
    except ImportError:  # JSON is YAML
        body = json.dumps(table, indent=1, sort_keys=True) + "\n"
    path.write_text(header + body)


def cpu_resources_table() -> dict:
    from centralflows.plan.resources import load_table

    return load_table(ROOT / "workflow/resources.yaml", "cpu")


def job_name(part: str, arch: str | None) -> str:
    return part if arch is None else f"{part}:{arch}"


def plan_jobs(args, status: dict) -> list[tuple]:
    """(part, arch, cap s) in the order they run: ORDER filtered by --parts and --archs; for --cpu-test
    its own short list with longer caps; with --resume, less what an earlier call did."""
    parts = set(args.parts.split(","))
    archs = (args.archs or ",".join(ARCHS)).split(",")
    jobs = [(p, a, cap) for p, a, cap in ORDER if (p == "preflight" or p in parts) and a in (None, *archs)]
    if args.cpu_test:  # a shared 2-core machine compiling, slower still under load: caps it should not reach
        jobs = [(p, a, 450 if p == "check" else 240) for p, a, _ in jobs]
        if not args.archs:
            jobs = [j for j in jobs if job_name(*j[:2]) in CPU_TEST]
            jobs.sort(key=lambda j: CPU_TEST.index(job_name(*j[:2])))
    if args.resume:
        jobs = [j for j in jobs if j[0] == "preflight" or status.get(job_name(*j[:2])) != "done"]
    return jobs


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu-test", action="store_true", help="on CPU, small sizes, its own label")
    parser.add_argument("--out", default=str(ROOT / "bench/results"), help="folder of the JSON and YAML")
    parser.add_argument("--label", help="entry and file names (default gpu; gpu-script-test-cpu)")
    parser.add_argument("--budget", type=float, help="seconds for all parts (default 450; --cpu-test 1500)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"of {','.join(PARTS)}")
    parser.add_argument("--archs", help=f"default: all (--cpu-test: {', '.join(CPU_TEST[1:])})")
    parser.add_argument("--resume", action="store_true", help="skip the parts done by an earlier call")
    parser.add_argument("--check-cell", default="mlp_gd_central", help="the ci cell of the check")
    parser.add_argument(
        "--without", help=f"act as if these packages were missing (--cpu-test: {GPU_IMAGE_LACKS})"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(json.loads(args.worker))

    started = time.time()
    label = args.label or ("gpu-script-test-cpu" if args.cpu_test else "gpu")
    budget = args.budget or (1500.0 if args.cpu_test else 450.0)
    deadline = started + budget
    left_out = args.without if args.without is not None else (GPU_IMAGE_LACKS if args.cpu_test else "")
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if args.cpu_test:
        os.environ["JAX_PLATFORMS"] = "cpu"
    without(left_out)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, yaml_path = out / f"{label}.json", out / f"resources_{label}.yaml"
    log_path = out / f"{label}.log"
    results = {}
    if json_path.exists():
        with contextlib.suppress(json.JSONDecodeError):
            results = json.loads(json_path.read_text())
    # a second call (--resume, --parts, --archs) fills in what the first left; the rest is kept
    entry = results.get(label, {})
    entry.update({"label": label, "mode": "cpu-test" if args.cpu_test else "gpu", "budget_s": budget,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
                  "script": "bench/device_check.py", "tested_jax": TESTED_JAX})  # fmt: skip
    for section in ("status", "hvp", "precision", "memory", "steps"):
        entry.setdefault(section, {})

    def save():
        entry["wall_s"] = time.time() - started
        write_json(json_path, {**results, label: entry})

    def say(text: str):
        print(f"[{time.time() - started:6.1f} s] {text}", flush=True)

    say(f"device check '{label}' -> {json_path} (budget {budget:.0f} s; log {log_path})")
    with open(log_path, "w") as log:
        for part, arch, cap in plan_jobs(args, entry["status"]):
            name = job_name(part, arch)
            left = deadline - time.time() - 5  # the rest: the resources table and the files
            if left < 15:
                entry["status"][name] = f"skipped: {left + 5:.0f} s of the budget left"
                say(f"{name}: {entry['status'][name]}")
                save()
                continue
            timeout = min(cap, left)
            accepted = [
                p for p, ok in entry.get("environment", {}).get("precisions", {}).items() if ok == "ok"
            ]
            spec = {"part": part, "arch": arch, "tiny": args.cpu_test, "without": left_out,
                    "cell": args.check_cell, "precisions": accepted or list(PROBED),
                    "steps_from": steps_from(entry["memory"].get(arch, {})),
                    "deadline": time.time() + timeout - 3}  # fmt: skip

            def on_result(result, part=part, arch=arch):
                store(entry, part, arch, result)
                save()

            log.write(f"\n===== {name} =====\n")
            log.flush()
            say(f"{name}: ... (cap {timeout:.0f} s)")
            start = time.time()
            entry["status"][name] = run_worker(spec, timeout, log, on_result)
            say(f"{name}: {entry['status'][name]} in {time.time() - start:.1f} s")
            if part == "preflight":
                env = entry.get("environment", {})
                entry["device"] = {"name": env.get("device_kind"), "backend": env.get("backend"),
                                   "devices": env.get("devices"), "memory": env.get("device_memory"),
                                   "jax": env.get("jax")}  # fmt: skip
                entry["differs"], entry["fatal"] = preflight_verdict(env, args.cpu_test)
                for line in entry["differs"]:
                    say(f"note: {line}")
            save()
            if entry.get("fatal"):
                say(f"cannot measure: {entry['fatal']}")
                print(f"bench/gpu.sh: {entry['fatal']}; wrote {json_path}", file=sys.stderr)
                sys.exit(2)
    try:
        config, _ = load_workflow_config()
        cells = list(paper_cost.paper_cells(config))
        table, how = resources_table(entry, cpu_resources_table(), cells, label)
        write_resources(yaml_path, table, entry.get("device", {}).get("name") or "an unknown device")
        entry["resources"] = {"path": str(yaml_path), "cells": how,
                              "not_measured": sorted(set(cells) - set(how))}  # fmt: skip
    except Exception as err:
        entry["resources"] = {"error": error_text(err)}
    save()
    undone = {k: v for k, v in entry["status"].items() if v != "done"}
    say(f"wrote {json_path} and {yaml_path}; {len(entry['status']) - len(undone)} parts done")
    for name, why in undone.items():
        say(f"  {name}: {why}")
    if undone:
        say("a second call with --resume runs what is not done")


def store(entry: dict, part: str, arch: str | None, result: dict):
    """A worker's result into its sections of the entry."""
    if part == "preflight":
        entry["environment"] = result
    elif part == "check":
        entry["check"] = result
    elif part == "hvp":
        entry["hvp"][arch] = {
            **result.get("hvp", {}),
            **({"error": result["error"]} if "error" in result else {}),
        }
        entry["precision"][arch] = result.get("precision", {})
        for key in ("device_memory", "host_peak_mb", "out_of_memory_with_full_batch"):
            if key in result:
                entry["hvp"][arch][key] = result[key]
    else:
        entry[part][arch] = result


def preflight_verdict(env: dict, cpu_test: bool) -> tuple[list[str], str]:
    """(what differs from the tested setup, in words; what stops the check, or "")."""
    notes, fatal = [], ""
    missing = env.get("missing", [])
    if missing:
        fatal = (
            f"missing Python packages {', '.join(missing)}: put their wheels in bench/wheels "
            "(bash bench/gpu.sh --build-wheelhouse, bench/README.md), or install them"
        )
    elif "backend" not in env:
        why = env.get("error") or "it stopped before JAX reported a backend (the log says where)"
        return notes, f"the preflight failed: {why}"
    jax_version = env.get("jax")
    if jax_version and jax_version != TESTED_JAX:
        notes.append(f"JAX {jax_version}, not the {TESTED_JAX} this project is tested with")
    backend = env.get("backend")
    if backend and backend != "gpu" and not cpu_test:
        fatal = fatal or (
            f"JAX's backend is {backend}, not gpu (devices {env.get('devices')}): this JAX has no working "
            "CUDA plugin here; nothing measured (bash bench/gpu.sh --cpu-test tests the script on CPU)"
        )
    for module, status in env.get("imports", {}).items():
        if status != "ok":
            fatal = fatal or f"the project does not import ({module}: {status})"
    for name, status in env.get("precisions", {}).items():
        if status != "ok":
            notes.append(f"matmul precision {name!r} refused: {status}")
    if isinstance(env.get("cpu_device"), dict):
        notes.append(f"no CPU device beside the GPU ({env['cpu_device']['error']}): no CPU-vs-GPU check")
    for module in OPTIONAL:
        if env.get("packages", {}).get(module) is None:
            notes.append(f"{module} not installed (not needed: {OPTIONAL_USE[module]})")
    if env.get("config") and not isinstance(env["config"], str):
        fatal = fatal or f"config.yaml unreadable: {env['config']}"
    return notes, fatal


OPTIONAL_USE = {
    "jsonschema": "the config is read unvalidated",
    "referencing": "the config is read unvalidated",
    "scipy": "no code path here uses it",
}


if __name__ == "__main__":
    main()
