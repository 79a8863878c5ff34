"""Proposes `expect:` entries for the claims of a scale that do not pass there, from its claims.csv.

python workflow/scripts/propose_expectations.py --scale ci [results/ci/tables/claims.csv]

For each claim expected to hold (no `expect:` for the scale yet) that fails or has no data on some
cell, prints the YAML to paste under the claim, with a reason drawn from how the scale's run of the
cell differs from the paper's (a stand-in network, fewer steps, fewer examples). A person reads the
reason before pasting: a claim that fails for another cause is a finding, not an expectation.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

from centralflows.plan.cells import all_cells
from centralflows.plan.grid import cell_run_config
from centralflows.plan.tree import get_path
from centralflows.plan.workflow import load_config

ROOT = Path(__file__).resolve().parents[2]


def differences(config: dict, cell: str, scale: str) -> list[str]:
    """How the scale's run of `cell` differs from its paper run (the usual reasons a claim cannot hold)."""
    if cell not in all_cells(config):
        return []  # an ordered claim's row names its cells joined by < or >
    spec = all_cells(config)[cell]
    paper, small = cell_run_config(config, spec, "paper"), cell_run_config(config, spec, scale)
    out = []
    arch, stand_in = get_path(paper, "arch.name"), get_path(small, "arch.name")
    if arch != stand_in:
        out.append(f"stand-in network ({stand_in} for the paper's {arch})")
    if paper.get("steps") != small.get("steps"):
        out.append(f"run too short ({small.get('steps')} of the paper's {paper.get('steps')} steps)")
    if get_path(paper, "data.n") != get_path(small, "data.n"):
        out.append(f"n = {get_path(small, 'data.n')} examples, not {get_path(paper, 'data.n')}")
    return out


def proposals(config: dict, claims: pd.DataFrame, scale: str) -> dict[str, dict[str, str]]:
    """Claim -> cell -> proposed reason, for the rows expected to hold that do not pass (a cell that a
    part of the scale did not run, `not-run`, has nothing to explain)."""
    out: dict[str, dict[str, str]] = {}
    failed = (claims["expected"] == "holds") & ~claims["status"].isin(["pass", "not-run"])
    for row in claims[failed].itertuples():
        outcome = (
            "no data (the metric is undefined)" if row.status == "no-data" else f"measured {row.value:.3g}"
        )
        why = "; ".join(differences(config, row.cell, scale)) or "CHECK: no scale difference explains it"
        out.setdefault(row.claim, {})[row.cell] = f"not evaluable at {scale}: {outcome}; {why}"
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="ci")
    parser.add_argument("claims", nargs="?", help="claims.csv (default: results/<scale>/tables/claims.csv)")
    args = parser.parse_args(argv)
    path = Path(args.claims or ROOT / f"results/{args.scale}/tables/claims.csv")
    if not path.is_file():
        print(
            f"error: no {path}; build it with `snakemake results/{args.scale}/tables/claims.csv`",
            file=sys.stderr,
        )
        return 2
    config = load_config(ROOT / "config.yaml")
    claims = pd.read_csv(path)
    for claim, by_cell in proposals(config, claims, args.scale).items():
        every = set(claims.loc[claims["claim"] == claim, "cell"]) == set(by_cell)
        reasons = set(by_cell.values())
        if every and len(reasons) == 1:
            entry = {"expect": {args.scale: reasons.pop()}}
        else:
            entry = {"expect": {args.scale: by_cell}}
        print(f"  {claim}:")
        for line in yaml.safe_dump(entry, width=200, sort_keys=False, allow_unicode=True).splitlines():
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
