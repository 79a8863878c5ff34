"""Compare two results/<scale>/tables trees: every CSV (gzip decompressed) value for value as text, and
the `attrs` of every run info JSON. Left out, because they differ by design between two executions of
the same computation: the job record (the info JSON's `job`, the summary's `slurm_job_id` and `wall_s`
columns) and the `git_commit` and `resumed_at_step` attributes (HEAD when the run started; the
step a resumed run restarted from).

    python .ci/compare_tables.py REFERENCE_DIR NEW_DIR [RUN_ID ...]

With RUN_ID arguments only those runs' tables (tables/runs/<id>.*) are compared, plus summary.csv and
claims.csv. Exit 1 with the differing files listed. On one CPU the engine is bitwise deterministic
(float32, fixed seeds, resume restores the full state), so no tolerance is needed here; `check`
(workflow/scripts/check.py) is the tolerant comparison across machines.
"""

import csv
import gzip
import io
import json
import sys
from pathlib import Path

VOLATILE_COLUMNS = {"slurm_job_id", "wall_s"}
VOLATILE_ATTRS = {"git_commit", "resumed_at_step"}


def content(path: Path):
    if path.suffix == ".json":
        attrs = json.loads(path.read_text()).get("attrs") or {}
        return {k: v for k, v in attrs.items() if k not in VOLATILE_ATTRS}
    text = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    rows = list(csv.reader(io.StringIO(text.decode())))
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if name not in VOLATILE_COLUMNS]
    return [[row[i] if i < len(row) else None for i in keep] for row in rows]


def main(ref: Path, new: Path, run_ids: list[str]) -> int:
    if run_ids:
        names = ["summary.csv", "claims.csv"]
        names += [f"runs/{r}{ext}" for r in run_ids for ext in (".csv.gz", ".json")]
    else:
        names = sorted(str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file())
    bad = []
    for name in names:
        a, b = ref / name, new / name
        if not a.exists() or not b.exists():
            bad.append(f"{name}: missing in {'reference' if not a.exists() else 'new'}")
        elif content(a) != content(b):
            bad.append(f"{name}: differs")
    for line in bad:
        print("  DIFF", line)
    print(f"compared {len(names)} files of {new} with {ref}: {'EQUAL' if not bad else f'{len(bad)} differ'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
