"""Fetch the official CIFAR-10 python archive (md5-checked) into the data root."""

import sys
from pathlib import Path

from centralflows.plan.logs import log_to
from centralflows.problem.data import DataError
from centralflows.problem.data.cifar10 import download_cifar10

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
try:
    path = download_cifar10(Path(snakemake.output[0]).parent)  # noqa: F821
except DataError as error:  # no network: the message alone, no traceback
    log.error("%s", error)
    sys.exit(f"error: {error}")
log.info("CIFAR-10 archive at %s", path)
