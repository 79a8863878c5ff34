"""A run's attempts: every process that works on a run (its start, each resume after a stop or a
failure) appends what it cost and how it ended to `<run folder>/attempts.jsonl`, so that a paper run
spread over several jobs or sessions reports its whole wall time, CPU time and peak memory."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ATTEMPTS = "attempts.jsonl"


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def processor() -> str:
    """The machine's processor, e.g. "AMD EPYC, family 23 model 1, 2 cores, avx2": a run resumed on
    another machine computed its steps with other kernels (rounding) at another speed."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        return f"{platform.machine()} {platform.processor()}, {os.cpu_count()} cores".strip()
    flags = fields.get("flags", "").split()
    isa = next((x for x in ("avx512f", "avx2", "avx") if x in flags), "")
    return (
        f"{fields.get('model name', '?')}, family {fields.get('cpu family', '?')} model "
        f"{fields.get('model', '?')}, {os.cpu_count()} cores, {isa}"
    )


def peak_rss_bytes() -> int:
    """This process's peak resident set so far, in bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(rss) * (1 if sys.platform == "darwin" else 1024)


@contextmanager
def attempt(out_dir, **info):
    """Records the enclosed work as one attempt of the run in `out_dir`, however it ends.

    The record holds `info` (e.g. the checkpoint it resumed from), its start (UTC), the `processor`,
    `wall_s`, `cpu_s` (this process, all its threads), `peak_rss_bytes` and `end`: "completed",
    "signal N" for a run stopped by a signal (it resumes later), or the exception's name. Yields the
    record, to which the caller may add keys.
    """
    record = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "processor": processor(), **info}
    wall, cpu = time.perf_counter(), _cpu_s()
    try:
        yield record
        record["end"] = "completed"
    except BaseException as err:
        signum = getattr(err, "signum", None)
        record["end"] = f"signal {signum}" if signum else type(err).__name__
        raise
    finally:
        record.update(
            wall_s=round(time.perf_counter() - wall, 3),
            cpu_s=round(_cpu_s() - cpu, 3),
            peak_rss_bytes=peak_rss_bytes(),
        )
        path = Path(out_dir) / ATTEMPTS
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_attempts(out_dir) -> list[dict]:
    """The run's attempts in order (none for a run that the workflow never started)."""
    path = Path(out_dir) / ATTEMPTS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def attempt_totals(records: list[dict]) -> dict:
    """The run's cost over its attempts: their count, summed wall and CPU seconds, the largest peak."""
    return {
        "attempts": len(records),
        "wall_s": round(sum(r.get("wall_s", 0) for r in records), 1),
        "cpu_s": round(sum(r.get("cpu_s", 0) for r in records), 1),
        "peak_rss_bytes": max((r.get("peak_rss_bytes", 0) for r in records), default=0),
    }
