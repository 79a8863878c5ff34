"""Writes the figure table of README.md (figure id -> catalog ids -> cells -> file) from the registry.

python workflow/scripts/figure_index.py          # rewrite the block in README.md
python workflow/scripts/figure_index.py --check  # exit 1 if README.md is out of date
"""

import argparse
import sys
from pathlib import Path

from centralflows.plan.grid import figure_cell_names
from centralflows.plan.workflow import load_config

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- figure-index:start -->", "<!-- figure-index:end -->"


def figure_table(config: dict) -> str:
    rows = ["| figure | catalog | cells | file |", "|---|---|---|---|"]
    for fid, entry in config["figures"].items():
        catalog = ", ".join(str(c) for c in entry.get("catalog", []))
        cells = ", ".join(figure_cell_names(entry)) or "(computed toy)"
        rows.append(f"| `{fid}` | {catalog} | {cells} | `figures/<scale>/{fid}.png` |")
    return "\n".join(rows)


def render(readme: str, config: dict) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{figure_table(config)}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    config = load_config(ROOT / "config.yaml")
    readme = (ROOT / "README.md").read_text()
    new = render(readme, config)
    if args.check:
        if new != readme:
            print("README.md figure table is out of date: run python workflow/scripts/figure_index.py")
            return 1
        return 0
    (ROOT / "README.md").write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
