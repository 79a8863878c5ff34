"""The workflow's cells: named cells and the grids (workflow/cells.yaml) expanded into named cells."""

from __future__ import annotations

from centralflows.plan.tree import deep_merge, set_path


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand_grid(name: str, grid: dict) -> dict[str, dict]:
    """Cells of one grid: the product of its axes, each merged into the grid's `run`.

    A cell is named `<grid>.<label>.<label>...`, one label per axis in the order written:
    the value itself for strings, `<last key><value:g>` for numbers (`gd_vision.cnn.lr0.01`): its
    coordinates in the paper's grid. An axis may list its values per value of an earlier axis,
    `opt.lr: {lstm: [0.35, 0.7], mamba: [0.025, 0.05]}` (each network its own learning rates).
    `scale_axes[<scale>][<axis>]` maps a paper value of the axis to
    its value at that scale, e.g. `{0.01: 0.06, 0.02: 0.08}` (larger learning rates for the tiny ci
    networks; cell names keep the paper values), or, where the replacement depends on another axis,
    maps a value of that axis to such a map: `{lstm: {0.01: 0.02}, mamba: {0.01: 0.015}}`. A `null`
    leaves that cell out at that scale (`skip_scales`; see `resolve_names`).
    `run_by_value[<label>]` is merged into the run of every cell with that axis label, e.g.
    `{mamba: {data: {n: 250}}}`: the paper trains Mamba on fewer examples than the other models.
    """
    _check_scale_axes(name, grid)
    cells = {}
    for values in _axis_points(name, grid["axes"]):
        run = grid.get("run", {})
        labels = []
        for path, value in values.items():
            run = set_path(run, path, value)
            labels.append(
                _label(value) if isinstance(value, str) else f"{path.split('.')[-1]}{_label(value)}"
            )
        scales, skip_scales = dict(grid.get("scales", {})), []
        for scale, overrides in grid.get("scale_axes", {}).items():
            for path, by_value in overrides.items():
                value = _scale_value(by_value, path, values, f"grid {name!r}, scale_axes {scale}.{path}")
                if value is None:
                    skip_scales.append(scale)
                else:
                    scales[scale] = set_path(scales.get(scale, {}), path, value)
        for label in labels:  # per-value settings, e.g. Mamba's n = 250 in a sequence grid
            run = deep_merge(run, grid.get("run_by_value", {}).get(label))
        cell = {"run": run, "scales": scales, "grid": name}
        if skip_scales:
            cell["skip_scales"] = skip_scales
        cells[".".join([name, *labels])] = cell
    return cells


def _axis_points(name: str, axes: dict) -> list[dict]:
    """Every combination of axis values, in the order written ({axis path: value} each); an axis
    given as {value of an earlier axis: [values]} takes the list of that cell's earlier value."""
    points = [{}]
    for path, values in axes.items():
        grown = []
        for point in points:
            if isinstance(values, dict):
                keys = [v for v in point.values() if v in values]
                if len(keys) != 1:
                    raise ValueError(
                        f"grid {name!r}, axis {path!r}: its values are listed by {list(values)}, "
                        f"which must match exactly one earlier axis value of cell {list(point.values())}"
                    )
                choices = values[keys[0]]
            else:
                choices = values
            grown += [{**point, path: value} for value in choices]
        points = grown
    return points


def axis_values(values) -> list:
    """All values of one axis (a list, or lists by a value of an earlier axis)."""
    return [v for vs in values.values() for v in vs] if isinstance(values, dict) else list(values)


def _scale_value(by_value: dict, path: str, values: dict, where: str):
    """The value at one scale of axis `path` for the cell with axis values `values` (see expand_grid)."""
    nested = [v for p, v in values.items() if p != path and isinstance(by_value.get(v), dict)]
    if nested:  # keyed by this cell's value of another axis
        by_value = by_value[nested[0]]
    if values[path] not in by_value or isinstance(by_value[values[path]], dict):
        raise ValueError(
            f"{where}: no entry for {values[path]!r} of cell {list(values.values())} (has {list(by_value)})"
        )
    return by_value[values[path]]


def _check_scale_axes(name: str, grid: dict) -> None:
    """Every key of a `scale_axes` map is a paper value of its axis (or of another axis, for a nested
    map), so that a mistyped value stops the parse instead of leaving its cell at the paper value."""
    axes = grid["axes"]
    for scale, overrides in grid.get("scale_axes", {}).items():
        for path, by_value in overrides.items():
            where = f"grid {name!r}, scale_axes {scale}.{path}"
            if path not in axes:
                raise ValueError(f"{where}: {path!r} is not an axis of the grid (axes: {list(axes)})")
            others = [v for p, vs in axes.items() if p != path for v in axis_values(vs)]
            for key, value in by_value.items():
                inner = value if isinstance(value, dict) else {key: value}
                if isinstance(value, dict) and key not in others:
                    raise ValueError(f"{where}: {key!r} is not a value of another axis (values: {others})")
                for paper in inner:
                    if paper not in axis_values(axes[path]):
                        raise ValueError(f"{where}: {paper!r} is not a value of the axis ({axes[path]})")


def all_cells(config: dict) -> dict[str, dict]:
    """Every named cell and every grid cell of the workflow config, by cell name."""
    cells = {name: {**cell, "grid": None} for name, cell in config.get("cells", {}).items()}
    for name, grid in config.get("grids", {}).items():
        for cell_name, cell in expand_grid(name, grid).items():
            if cell_name in cells:
                raise ValueError(f"grid {name!r} makes cell {cell_name!r}, which is already defined")
            cells[cell_name] = cell
    return cells
