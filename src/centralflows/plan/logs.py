"""Logging of the workflow scripts: each sends its log, warnings and stderr to its rule's `log:` file."""

from __future__ import annotations

import logging
import sys


def log_to(path) -> logging.Logger:
    """Sends logging, warnings and stderr of a workflow script to the rule's log file."""
    handle = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the script)
    sys.stderr = handle
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    logging.captureWarnings(True)
    return logging.getLogger("workflow")
