"""Two `paper_cost.py` measurements side by side: step CPU seconds, HVP-equivalents and core-hours.

    python bench/compare_cost.py BEFORE.json AFTER.json [--label cpu]

Each file is a `paper_cost.py --json` output (several files per side may be given as comma-separated
lists: one per architecture when they were measured in turns). Prints, per cell measured in both and
per process, the median step's CPU seconds and HVP-equivalents before → after with the ratios of CPU
time per step and per HVP-equivalent, then each cell's runs in CPU core-hours (central at k = 1, 2, 3)
before → after.
"""

import argparse
import json

from paper_cost import CENTRAL_KS  # bench/ is on the path when this runs as a script

CENTRALS = tuple(f"central_k{k}" for k in CENTRAL_KS)
PROCESSES = ("discrete", "stable", *CENTRALS)


def cells(paths: str, label: str) -> tuple[dict, dict]:
    """(cell key -> measured cell, central_kK -> cell key -> its runs' cost) merged over the files."""
    measured, hours = {}, {}
    for path in paths.split(","):
        with open(path) as f:
            entry = json.load(f)[label]
        measured.update({k: c for k, c in entry["cells"].items() if "processes" in c})
        for process, grid in entry.get("paper_grid", {}).items():
            for key, cell in grid.get("cells", {}).items():
                hours.setdefault(process, {})[key] = cell
    return measured, hours


def usable(process: dict | None) -> bool:
    """A process step that can be compared: measured, with work done (a flow that stopped did none)."""
    return bool(process) and not process.get("stopped") and process.get("step_cpu_s", 0) > 0


def per_hvp(process: dict) -> float:
    return process["step_cpu_s"] / max(process["hvp_equivalents_per_step"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    (old, old_hours), (new, new_hours) = cells(args.before, args.label), cells(args.after, args.label)
    both = [k for k in new if k in old]
    # ratios are before / after (above 1: faster now); per HVP-equivalent too, because the solver's
    # iteration count varies from step to step and an HVP's cost less
    print(
        "| cell | process | step CPU s before → after | ratio before/after | HVP-equivalents before → after "
        "| ratio per HVP-equivalent |"
    )
    print("|---|---|---|---|---|---|")
    left_out = [
        f"{k} (measured {'after' if k in new else 'before'} only)" for k in {**old, **new} if k not in both
    ]
    for key in both:
        for name in PROCESSES:
            a, b = old[key]["processes"].get(name), new[key]["processes"].get(name)
            if not usable(a) or not usable(b):
                if a or b:
                    left_out.append(f"{key} {name} (not measured or stopped on a side)")
                continue
            print(
                f"| {key} | {name} | {a['step_cpu_s']:.1f} → {b['step_cpu_s']:.1f} | "
                f"{a['step_cpu_s'] / b['step_cpu_s']:.2f}x | "
                f"{a['hvp_equivalents_per_step']:.1f} → {b['hvp_equivalents_per_step']:.1f} | "
                f"{per_hvp(a) / per_hvp(b):.2f}x |"
            )
    print()
    # each side's own plan: the runs of a cell (and so their steps) may differ between the commits
    print("| cell | its runs before → after | CPU core-hours before → after: central k = 1 | k = 2 | k = 3 |")
    print("|---|---|---|---|---|")
    for key in both:
        pairs = [(old_hours.get(p, {}).get(key), new_hours.get(p, {}).get(key)) for p in CENTRALS]
        if not any(a and b for a, b in pairs):
            continue
        a, b = next((a, b) for a, b in pairs if a and b)
        runs = f"{a['runs']} runs, {a['steps']} steps → {b['runs']} runs, {b['steps']} steps"
        row = [f"{a['core_hours']:.1f} → {b['core_hours']:.1f}" if a and b else "-" for a, b in pairs]
        print(f"| {key} | {runs} | " + " | ".join(row) + " |")
    if left_out:
        print("\nnot compared: " + "; ".join(left_out))


if __name__ == "__main__":
    main()
