"""Compare the scale's summary with its committed reference within the config's tolerances, and fail on
any claim expected to hold at this scale that does not pass. A part of the scale (config `only`) is
compared on its own cells; a scale without a reference file (paper, so far) is not compared at all,
which check.txt says, and only its claims are checked."""

import sys
from pathlib import Path

import pandas as pd

from centralflows.analysis.check import compare_to_reference
from centralflows.analysis.claims import claim_failures
from centralflows.plan.logs import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
params = snakemake.params  # noqa: F821
summary = pd.read_csv(snakemake.input.summary)  # noqa: F821
reference = Path(params.reference)
out = Path(snakemake.output[0])  # noqa: F821
claims = pd.read_csv(snakemake.input.claims)  # noqa: F821
claim_problems = claim_failures(claims)
for line in claim_problems:
    log.error("claim: %s", line)
counts = claims["status"].value_counts().to_dict()
claims_line = (
    f"claims: {counts.get('pass', 0)} pass, {len(claim_problems)} expected to hold but do not, "
    f"{counts.get('not-evaluable', 0)} not evaluable at this scale, {counts.get('not-run', 0)} not run\n"
)
if params.update_reference:
    if params.part:  # a reference holds the whole scale: a part would drop the other cells' rows
        sys.exit(f"update_reference rewrites {reference} from the whole scale: run it without `only`")
    reference.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(reference, index=False)
    out.write_text(f"reference {reference} rewritten from {snakemake.input.summary}\n")  # noqa: F821
    log.info("reference %s rewritten", reference)
    sys.exit(0)
if reference.exists():
    cells = list(summary["cell"]) if params.part else None
    problems = compare_to_reference(summary, pd.read_csv(reference), params.tolerances, cells)
    compared = f"{len(summary)} cells match {reference} within the tolerances of config.yaml"
    if params.part:
        compared += f" (only={params.part}: the reference's other cells did not run and are not compared)"
else:  # honest about it: nothing to compare with, which is no drift and no pass either
    problems = []
    compared = f"no reference at this scale ({reference}): the {len(summary)} cells are not compared"
    log.warning("%s", compared)
for line in problems:
    log.error("drift: %s", line)
if problems or claim_problems:
    sys.exit(
        f"{len(problems)} drift(s) against {reference}, {len(claim_problems)} claim(s) expected to hold "
        "that do not:\n" + "\n".join(problems + claim_problems)
    )
out.write_text(compared + "\n" + claims_line)
log.info("%s; every claim expected to hold passes", compared)
