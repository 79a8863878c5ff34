"""The figure contract: each figure script declares what it reads, per named cell, and reads only that.

A figure script starts with a literal

    READS = {"main": {"discrete": ["train_loss", "hessian_eigs"], "central": ["predicted_loss"]}}

mapping each *role* (a key of its registry entry's `cells:`) to the processes and quantities it reads
of that role's cells. The workflow parses it without importing the script (`script_reads`), keeps
exactly those rows in the figure's table and fails when a declared quantity is absent from a run
(`missing_reads`); while the script draws, `centralflows.analysis.plotting` fails on any read outside the
declaration and on any empty curve. Errors name the figure, the cell and the quantity.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

Reads = dict[str, dict[str, list[str]]]  # role -> process -> quantities


class ContractError(ValueError):
    """A figure read something it does not declare, something absent, or drew an empty curve."""


def script_reads(path) -> Reads:
    """The `READS` declaration of a figure script, parsed (never imported) and checked for shape."""
    path = Path(path)
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "READS" for t in node.targets):
            reads = ast.literal_eval(node.value)
            break
    else:
        raise ContractError(f"{path}: no `READS = {{role: {{process: [quantity, ...]}}}}` literal")
    ok = isinstance(reads, dict) and all(
        isinstance(by_process, dict)
        and all(isinstance(q, list) and all(isinstance(x, str) for x in q) for q in by_process.values())
        for by_process in reads.values()
    )
    if not ok:
        raise ContractError(f"{path}: READS must map role -> process -> list of quantity names")
    return reads


def check_roles(figure: str, reads: Reads, roles) -> None:
    """The roles of the registry entry's `cells:` and of the script's READS must be the same."""
    if set(reads) != set(roles):
        raise ContractError(
            f"figure {figure}: the registry names the cell roles {sorted(roles)} but its script's READS "
            f"declares {sorted(reads)}; make them the same"
        )


def members(value) -> list[str]:
    """The cell names of one role (a role holds one cell or a list of cells)."""
    return [value] if isinstance(value, str) else list(value)


def missing_reads(table: pd.DataFrame, reads_of_role: dict[str, list[str]]) -> list[str]:
    """The declared `process/quantity` pairs with no finite value in one run's long table."""
    finite = table[np.isfinite(table["value"].to_numpy(dtype=float))]
    present = set(zip(finite["process"], finite["quantity"], strict=True))
    return [
        f"{p}/{q}" for p, quantities in reads_of_role.items() for q in quantities if (p, q) not in present
    ]


def figure_rows(
    table: pd.DataFrame, figure: str, role: str, cell: str, reads_of_role: dict, max_step: int | None
) -> pd.DataFrame:
    """One cell's rows of a figure table: the rows of its run's long table that its role declares, up
    to the figure's `max_step`, with the cell's name. Fails on a declared quantity the run lacks."""
    keep = pd.Series(False, index=table.index)
    for process, quantities in reads_of_role.items():
        keep |= (table["process"] == process) & table["quantity"].isin(quantities)
    table = table[keep]
    missing = missing_reads(table, reads_of_role)
    if missing:
        raise ContractError(
            f"figure {figure}: cell {cell!r} has no {', '.join(missing)} although the script's READS "
            f"declares it for role {role!r}: a misspelled name, or a quantity the run does not log"
        )
    if max_step is not None:
        table = table[table["step"] <= max_step]
    return table.assign(cell=cell)


@dataclass
class Contract:
    """What one figure may read: its id, its roles (role -> cell or cells) and its READS."""

    figure: str
    roles: dict
    reads: Reads
    seen: set = field(default_factory=set)  # (role, process, quantity) read so far

    def role_of(self, cell: str) -> str:
        for role, value in self.roles.items():
            if cell in members(value):
                return role
        raise ContractError(
            f"figure {self.figure}: reads cell {cell!r}, which none of its roles {self.roles} names"
        )

    def check(self, cell: str, process: str, quantity: str) -> None:
        """Fails unless `process/quantity` of `cell` is declared; records the read."""
        role = self.role_of(cell)
        if quantity not in self.reads[role].get(process, []):
            raise ContractError(
                f"figure {self.figure}: cell {cell!r} (role {role!r}) reads {process}/{quantity}, which "
                f"its READS does not declare (declared for {role!r}: {self.reads[role]})"
            )
        self.seen.add((role, process, quantity))

    def unread(self) -> list[str]:
        """Declared reads the script never made (a stale declaration)."""
        return [
            f"{role}: {p}/{q}"
            for role, by_process in self.reads.items()
            for p, quantities in by_process.items()
            for q in quantities
            if (role, p, q) not in self.seen
        ]
