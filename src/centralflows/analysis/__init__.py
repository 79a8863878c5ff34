"""Analysis: HDF5 -> tables, per-run summaries, claims, and the figure helpers."""
