"""The README's figure table lists exactly the figures registered in workflow/figures.yaml."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_figure_table_is_current():
    proc = subprocess.run([sys.executable, "workflow/scripts/figure_index.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
