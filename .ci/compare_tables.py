"""Compare two results/<scale>/tables trees: every CSV value for value as text, every Parquet table
value for value, and the `attrs` of every run table's info (its Parquet metadata). Left out, because
they differ by design between two executions of the same computation: the job record (the info's
`job`, the summary's and metadata tables' `slurm_job_id` and `wall_s` columns) and the `git_commit`
and `resumed_at_step` attributes (HEAD when the run started; the step a resumed run restarted from) and
the process's peak memory (`peak_host_rss_bytes`, `peak_device_memory_bytes`).

    python .ci/compare_tables.py REFERENCE_DIR NEW_DIR [RUN_ID ...]

With RUN_ID arguments only those runs' tables (tables/runs/<id>.parquet) are compared, plus summary.csv
and claims.csv. Exit 1 with the differing files listed. On one CPU the engine is bitwise deterministic
(float32, fixed seeds, resume restores the full state), so no tolerance is needed here; `check`
(workflow/scripts/check.py) is the tolerant comparison across machines.
"""

import csv
import io
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

VOLATILE_COLUMNS = {"slurm_job_id", "wall_s"}
# the process's peak memory differs between an interrupted and an uninterrupted run of the same trajectory
VOLATILE_ATTRS = {"git_commit", "resumed_at_step", "peak_host_rss_bytes", "peak_device_memory_bytes"}


def content(path: Path):
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        info = json.loads((table.schema.metadata or {}).get(b"centralflows.run", b"{}"))
        attrs = {k: v for k, v in (info.get("attrs") or {}).items() if k not in VOLATILE_ATTRS}
        return table.replace_schema_metadata(None).to_pydict(), attrs
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if name not in VOLATILE_COLUMNS]
    return [[row[i] if i < len(row) else None for i in keep] for row in rows]


def main(ref: Path, new: Path, run_ids: list[str]) -> int:
    if run_ids:
        names = ["summary.csv", "claims.csv"]
        names += [f"runs/{r}.parquet" for r in run_ids]
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
