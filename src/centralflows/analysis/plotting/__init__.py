"""Shared plotting for the figure scripts: style, contract-checked reads and primitives, panels, and the
Snakemake adapter.

Figure scripts read one figure table (the long table of `centralflows.analysis.read` for the figure's
cells, processes and quantities, with the column `cell`, and the per-cell metadata in
`attrs["cells"]`) and stay a few lines long: `from centralflows.analysis import plotting`, then
`plotting.<name>` for any name below.
"""

import matplotlib

matplotlib.use("Agg")  # headless: cluster nodes and CI have no display

from centralflows.analysis.plotting.figure import read_table, run_figure  # noqa: E402
from centralflows.analysis.plotting.panels import (  # noqa: E402
    SPEEDS,
    acceleration_panels,
    distance_panel,
    eos_grid,
    eos_panels,
    outputs_grid,
    plot_eigenvalues,
    plot_loss,
    sharpness_panel,
    speed_panels,
    validation_grid,
    variance_panel,
)
from centralflows.analysis.plotting.primitives import (  # noqa: E402
    arch_groups,
    between,
    contract,
    curve,
    faint_and_smooth,
    gd_top,
    grid,
    indices,
    learning_rate,
    line,
    mark_onset,
    metadata,
    onset,
    panel_title,
    run_title,
    save,
    selected_coordinates,
    subplots,
    threshold,
    top,
    zoom_on_onset,
)
from centralflows.analysis.plotting.style import COLORS, LABELS, ONSET, PREDICTION, THRESHOLD  # noqa: E402

__all__ = [
    "COLORS",
    "LABELS",
    "ONSET",
    "PREDICTION",
    "SPEEDS",
    "THRESHOLD",
    "acceleration_panels",
    "arch_groups",
    "between",
    "contract",
    "curve",
    "distance_panel",
    "eos_grid",
    "eos_panels",
    "faint_and_smooth",
    "gd_top",
    "grid",
    "indices",
    "learning_rate",
    "line",
    "mark_onset",
    "metadata",
    "onset",
    "outputs_grid",
    "panel_title",
    "plot_eigenvalues",
    "plot_loss",
    "read_table",
    "run_figure",
    "run_title",
    "save",
    "selected_coordinates",
    "sharpness_panel",
    "speed_panels",
    "subplots",
    "threshold",
    "top",
    "validation_grid",
    "variance_panel",
    "zoom_on_onset",
]
