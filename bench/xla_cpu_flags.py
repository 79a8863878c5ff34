"""XLA:CPU flags on the paper sequence models' gradient and 3-vector HVP, each setting in a fresh process.

XLA reads `XLA_FLAGS` once, when the backend starts, so every setting runs in its own process (the
engine's allocator variables set as in a run); the settings alternate `--rounds` times. Each child
builds the paper-size problem (sorting, MSE; n = 1000, Mamba n = 250), compiles the two programs,
times `--repeats` calls (median wall and process CPU seconds) and saves its results, from which the
parent reports each setting's largest relative difference from the first setting's (float32
round-off, or 0 where a flag changes nothing in the compiled program).

    python bench/xla_cpu_flags.py [--arch mamba transformer] [--json bench/results/xla_cpu_flags.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from derivative_speed import PAPER_N, cpu_s, paper_problem  # shared with the other sequence benchmark

from centralflows.engine import derivatives

YNN = "--xla_cpu_experimental_ynn_fusion_type="
SETTINGS = {  # name: XLA_FLAGS
    "default": "",
    "ynn_none": YNN,  # no YNNPACK library fusions: XLA's own loops and Eigen dots
    "ynn_dot": YNN + "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "ynn_reduce": YNN + "LIBRARY_FUSION_TYPE_REDUCE",
    "ynn_dot_eltwise_reduce": YNN
    + "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE",
    "onednn": "--xla_cpu_use_onednn=true",
    "no_xnnpack": "--xla_cpu_use_xnnpack=false",
    "no_eigen_threads": "--xla_cpu_multi_thread_eigen=false",
    "concurrency_scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
}


def child(arch: str, repeats: int, save: Path) -> dict:
    _, problem, V = paper_problem(arch)
    w = problem.w0

    out = {}
    programs = {
        "grad": (jax.grad(problem.loss_fn), (w,)),
        "hvp": (lambda w, V: derivatives.batched_hvp(problem.loss_fn, w, V), (w, V)),
    }
    for name, (fn, args) in programs.items():
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        out[f"{name}_compile_s"] = time.perf_counter() - t0
        np.save(save / f"{name}.npy", np.asarray(jax.block_until_ready(compiled(*args))))
        walls, cpus = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), cpu_s()
            jax.block_until_ready(compiled(*args))
            walls.append(time.perf_counter() - t0)
            cpus.append(cpu_s() - c0)
        out[f"{name}_wall_s"], out[f"{name}_cpu_s"] = statistics.median(walls), statistics.median(cpus)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=["mamba", "transformer"], choices=sorted(PAPER_N))
    parser.add_argument(
        "--settings", nargs="+", default=["default", "ynn_none", "ynn_dot"], choices=list(SETTINGS)
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("ARCH", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.repeats, Path(args.child[1]))), flush=True)
        return

    import numpy as np

    from centralflows.runner.allocator import MALLOC_ENV
    from centralflows.runner.attempts import processor

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for arch in args.arch:
                for setting in args.settings:
                    save = Path(tmp, arch, setting)
                    save.mkdir(parents=True, exist_ok=True)
                    env = {**os.environ, **MALLOC_ENV, "XLA_FLAGS": SETTINGS[setting]}
                    command = [
                        sys.executable,
                        __file__,
                        "--repeats",
                        str(args.repeats),
                        "--child",
                        arch,
                        str(save),
                    ]
                    line = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
                    row = json.loads(line.strip().splitlines()[-1])
                    results.setdefault(arch, {}).setdefault(setting, []).append(row)
                    print(arch, setting, row, flush=True)
        summary = {}
        for arch, by_setting in results.items():
            first = args.settings[0]
            for setting, rows in by_setting.items():
                entry = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
                for name in ("grad", "hvp"):
                    ref = np.load(Path(tmp, arch, first, f"{name}.npy"))
                    got = np.load(Path(tmp, arch, setting, f"{name}.npy"))
                    entry[f"{name}_rel_diff"] = float(np.abs(got - ref).max() / np.abs(ref).max())
                summary.setdefault(arch, {})[setting] = entry
            for setting, entry in summary[arch].items():  # ratios: the first setting's time / this one's
                for name in ("grad", "hvp"):
                    entry[f"{name}_wall_ratio"] = (
                        summary[arch][first][f"{name}_wall_s"] / entry[f"{name}_wall_s"]
                    )
                    entry[f"{name}_cpu_ratio"] = (
                        summary[arch][first][f"{name}_cpu_s"] / entry[f"{name}_cpu_s"]
                    )
                grad = f"grad {entry['grad_wall_s'] * 1e3:7.1f} ms (x{entry['grad_wall_ratio']:.2f})"
                hvp = f"HVP {entry['hvp_wall_s'] * 1e3:7.1f} ms wall (x{entry['hvp_wall_ratio']:.2f})"
                cpu = f"{entry['hvp_cpu_s'] * 1e3:7.1f} ms CPU (x{entry['hvp_cpu_ratio']:.2f})"
                print(f"{arch:11s} {setting:10s} {grad}, {hvp}, {cpu}, rel diff {entry['hvp_rel_diff']:.1e}")
    if args.json:
        meta = {
            "cpu": processor(),
            "rounds": args.rounds,
            "repeats": args.repeats,
            "settings": {setting: SETTINGS[setting] for setting in args.settings},
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": results, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
