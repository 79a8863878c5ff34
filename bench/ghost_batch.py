"""Memory and time of a Hessian-vector product with the loss evaluated in ghost batches.

    nice -n 19 python bench/ghost_batch.py [--archs vit,resnet] [--ns 248,1000] [--sizes=-1,100]
        [--skip-full-above 250] [--json bench/results/ghost_batch.json]

`data.ghost_batch_size` (problem.build.ghost_batched_loss) evaluates the full-batch loss a chunk of
examples at a time, so its derivatives hold one chunk's activations. For each architecture's GD cell of
the paper grid (CIFAR-10 replaced by its CIFAR-shaped stand-in), each n and each ghost batch size
(-1: all examples at once), one worker measures a 1-vector HVP as `paper_cost.hvp_growth` does (CPU and
wall ms, XLA's FLOP count) and its peak RSS. The full batch is skipped above `--skip-full-above`: the
ViT's and ResNet's n = 1000 HVP does not fit 24 GB (bench/README.md), and a worker that swaps or is
killed by the kernel takes the machine with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_cost  # noqa: E402

ROOT = paper_cost.ROOT


def worker(arch: str, n: int, size: int) -> dict:
    from centralflows.plan.workflow import load_config

    cells = paper_cost.paper_cells(load_config(ROOT / "config.yaml"))
    run = next(run for key, (run, _) in cells.items() if key.startswith(f"{arch}/gd/"))
    run = {**run, "data": {**run["data"], "ghost_batch_size": size}}
    return paper_cost.hvp_growth(run, n, ks=(1,))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", default="vit,resnet")
    parser.add_argument("--ns", default="248,1000")
    parser.add_argument("--sizes", default="-1,100", help="ghost batch sizes (-1: the full batch)")
    parser.add_argument("--skip-full-above", type=int, default=250)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--json", default=str(ROOT / "bench/results/ghost_batch.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: arch,n,size; JSON on stdout
    args = parser.parse_args()
    if args.worker:
        arch, n, size = args.worker.split(",")
        print(json.dumps(worker(arch, int(n), int(size))))
        return

    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = paper_cost.machine_load()
    for arch in args.archs.split(","):
        for n in map(int, args.ns.split(",")):
            for size in map(int, args.sizes.split(",")):
                if size == -1 and n > args.skip_full_above:
                    continue
                print(f"{arch} n={n} ghost_batch_size={size} ...", flush=True)
                out = paper_cost.subprocess_json(["--worker", f"{arch},{n},{size}"], args.timeout, __file__)
                results.setdefault(arch, {})[f"{n}/{size}"] = out
                print(f"  {summary(out)}", flush=True)
                path.write_text(json.dumps(results, indent=1))
    print(markdown(results))


def summary(out: dict) -> str:
    if "error" in out:
        return f"error: {out['error']}"
    cpu, wall = (out["hvp"]["1"][k] / 1000 for k in ("cpu_ms", "wall_ms"))
    return f"1-vector HVP {cpu:.1f} s CPU ({wall:.1f} s wall), peak RSS {out['peak_mb'] / 1024:.2f} GB"


def markdown(results: dict) -> str:
    lines = ["| arch | n | ghost batch | 1-vector HVP, CPU s | wall s | peak RSS |", "|---" * 6 + "|"]
    for arch, cells in results.items():
        if arch == "machine":
            continue
        for key, out in cells.items():
            n, size = key.split("/")
            size = "all" if size == "-1" else size
            if "error" in out:
                lines.append(f"| {arch} | {n} | {size} | {out['error'][:80]} | | |")
                continue
            hvp = out["hvp"]["1"]
            lines.append(
                f"| {arch} | {n} | {size} | {hvp['cpu_ms'] / 1000:.1f} | {hvp['wall_ms'] / 1000:.1f} | "
                f"{out['peak_mb'] / 1024:.2f} GB |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
