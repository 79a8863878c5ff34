"""glibc's allocator settings for the engine's processes: set in the environment before they start."""

from __future__ import annotations

import os
import sys

# XLA:CPU allocates and frees its large buffers at every call. glibc's defaults serve them with mmap
# and return them to the system at once, so every call page-faults its memory in again: a paper LSTM
# run spent 43 % of its CPU time in the kernel. One arena that never trims and never maps keeps the
# memory in the process (bench/results/malloc_env.json: the LSTM's HVP 5.4x less system time, 1.42x
# less CPU time, 1.5x less wall time). The price: peak memory is held, not given back. glibc reads
# these once, at start, so a process cannot set them for itself.
MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(2**32),
}


def allocator_env(env: dict | None = None) -> dict:
    """The MALLOC_ENV settings that `env` (default: os.environ) does not set itself (its own win)."""
    env = os.environ if env is None else env
    return {key: value for key, value in MALLOC_ENV.items() if key not in env}


def use_allocator_env() -> None:
    """Adds the missing MALLOC_ENV settings to os.environ: every process started from here gets them."""
    os.environ.update(allocator_env())


def reexec_with_allocator_env(argv: list[str]) -> None:
    """Restarts `python -m centralflows argv` with MALLOC_ENV when it is missing (Linux only).

    Returns only when nothing is to be done; otherwise the process is replaced.
    """
    missing = allocator_env()
    if not missing or not sys.platform.startswith("linux"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "centralflows", *argv], {**os.environ, **missing})
