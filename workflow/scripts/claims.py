"""Each claim of the registry (REFERENCE §4) on each of its cells: measured value, threshold, pass, and
the scale's expectation (holds, or not evaluable with the reason; `check` fails a claim that should hold)."""

import pandas as pd

from centralflows.analysis.claims import apply_expectations, evaluate_claims
from centralflows.plan.logs import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
summary = pd.read_csv(snakemake.input.summary)  # noqa: F821
claims = evaluate_claims(summary, snakemake.params.claims, snakemake.params.cells)  # noqa: F821
claims = apply_expectations(claims, snakemake.params.claims, snakemake.params.scale)  # noqa: F821
claims.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("claims: %s", claims["status"].value_counts().to_dict())
