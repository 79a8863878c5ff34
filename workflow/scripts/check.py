"""Compare the scale's summary with its committed reference within the config's tolerances, and fail on
any claim expected to hold at this scale that does not pass."""

import sys
from pathlib import Path

import pandas as pd

from centralflows.analysis.check import compare_to_reference
from centralflows.analysis.claims import claim_failures
from centralflows.runner.logs import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
summary = pd.read_csv(snakemake.input.summary)  # noqa: F821
reference = Path(snakemake.params.reference)  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
claims = pd.read_csv(snakemake.input.claims)  # noqa: F821
claim_problems = claim_failures(claims)
for line in claim_problems:
    log.error("claim: %s", line)
counts = claims["status"].value_counts().to_dict()
claims_line = (
    f"claims: {counts.get('pass', 0)} pass, {len(claim_problems)} expected to hold but do not, "
    f"{counts.get('not-evaluable', 0)} not evaluable at this scale\n"
)
if snakemake.params.update_reference:  # noqa: F821
    reference.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(reference, index=False)
    out.write_text(f"reference {reference} rewritten from {snakemake.input.summary}\n")  # noqa: F821
    log.info("reference %s rewritten", reference)
    sys.exit(0)
if not reference.exists():
    sys.exit(f"no reference {reference}; create it with --config update_reference=True")
problems = compare_to_reference(summary, pd.read_csv(reference), snakemake.params.tolerances)  # noqa: F821
for line in problems:
    log.error("drift: %s", line)
if problems or claim_problems:
    sys.exit(
        f"{len(problems)} drift(s) against {reference}, {len(claim_problems)} claim(s) expected to hold "
        "that do not:\n" + "\n".join(problems + claim_problems)
    )
out.write_text(f"{len(summary)} cells match {reference} within the tolerances of config.yaml\n" + claims_line)
log.info("no drift against %s; every claim expected to hold passes", reference)
