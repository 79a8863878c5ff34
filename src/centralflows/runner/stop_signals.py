"""Stopping the workflow: SIGINT and SIGTERM to Snakemake reach its running jobs at once.

Snakemake's local executor waits for a running job when asked to stop (SIGINT: cancel; SIGTERM: finish
the running jobs), and a paper-scale run takes hours. A run job that gets the signal checkpoints its
last completed step and exits within seconds (`centralflows.runner.experiment`); its retry or the next
invocation resumes from there. Ctrl-C in a terminal already signals the whole process group; `kill PID`
does not. The workflow's `onstart` calls `forward_stop_signals()` in Snakemake's own process; inside a
run, `Signals` turns the signal into RunStopped between two jitted calls.
"""

import contextlib
import os
import signal

PROC = "/proc"  # Linux: where the process tree is read; elsewhere nothing is forwarded


def descendants(root: int) -> list[int]:
    """The pids of every process below `root` (children, their children, ...), read from /proc."""
    children = {}
    for entry in filter(str.isdigit, os.listdir(PROC)):
        try:
            with open(os.path.join(PROC, entry, "stat")) as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # it just exited
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def forward_stop_signals() -> None:
    """Installs SIGINT/SIGTERM handlers that signal every descendant, then run the previous handler.

    On SIGINT the previous SIGTERM handler (Snakemake's graceful stop: no new job, none restarted) runs
    too: Snakemake's own reaction to SIGINT, a KeyboardInterrupt in its scheduler loop, was seen lost
    under load, and the run job that the signal had stopped was then restarted as a failed job's retry.
    """
    previous_of = {}

    def forward(signum, frame, previous):
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        graceful = previous_of.get(signal.SIGTERM)
        if signum == signal.SIGINT and callable(graceful):
            graceful(signal.SIGTERM, frame)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # what the signal would have done: end the process
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    if not os.path.isdir(PROC):
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = previous_of[signum] = signal.getsignal(signum)
        signal.signal(signum, lambda s, f, previous=previous: forward(s, f, previous))


class RunStopped(RuntimeError):
    """The run was asked to stop (SIGTERM / SIGINT); a checkpoint of the last completed step was written.

    Attributes:
        signum: the signal received.
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"signal {signum}")
        self.signum = signum


class Signals:
    """SIGTERM and SIGINT raise RunStopped in the main thread at once, so a step of minutes is cut short.

    Python runs the handler between bytecodes, i.e. between two jitted calls (the LOBPCG iterations and
    the flows' substeps are host loops). Inside `deferred()` (HDF5 and checkpoint writes) the signal
    waits until the block ends, so no file is left half-written.
    """

    def __init__(self):
        self.pending, self.depth, self.saved = None, 0, {}

    def _handle(self, signum, frame):
        if self.depth:
            self.pending = signum
        else:
            raise RunStopped(signum)

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.saved[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: no graceful stop
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None:
            raise RunStopped(self.pending)
