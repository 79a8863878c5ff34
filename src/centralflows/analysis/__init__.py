"""Analysis: run tables (read), the EOS onset, per-run metrics, claims, the reference check, and the
figure contract and helpers (`plotting`, imported on its own: it loads matplotlib)."""

from centralflows.analysis.check import compare_to_reference
from centralflows.analysis.claims import apply_expectations, claim_failures, evaluate_claims
from centralflows.analysis.metrics import SUMMARY_COLUMNS, summarize_run, summary_table
from centralflows.analysis.onset import eos_onset
from centralflows.analysis.read import cell_metadata, read_run, read_run_info, read_run_table, write_run_table

__all__ = [
    "SUMMARY_COLUMNS",
    "apply_expectations",
    "cell_metadata",
    "claim_failures",
    "compare_to_reference",
    "eos_onset",
    "evaluate_claims",
    "read_run",
    "read_run_info",
    "read_run_table",
    "summarize_run",
    "summary_table",
    "write_run_table",
]
