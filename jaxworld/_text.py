"""How jaxworld writes things for people: avals, code locations (notebook cells), changes.

One home for each text helper (issue #16), so that a message and `jaxworld.explain` never
describe the same thing in two ways. Every function here only formats: none traces, validates or
counts anything.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # _deps uses this module: no import at run time
    from ._deps import Change


def short_aval(aval: Any) -> str:
    """``f32[3]`` for an abstract value (JAX's short form), ``str(aval)`` for anything else."""
    return aval.str_short(short_dtypes=True) if hasattr(aval, "str_short") else str(aval)


def is_notebook_cell(filename: str) -> bool:
    """Whether code with this ``co_filename`` was compiled by IPython (a shell or a kernel)."""
    return filename.startswith("<ipython-input-") or "/ipykernel_" in filename


def notebook_cell(filename: str) -> str | None:
    """``'notebook cell [n]'`` for code compiled by IPython, ``'notebook cell'`` when the number
    is not known, None for any other file."""
    if not is_notebook_cell(filename):
        return None
    if filename.startswith("<ipython-input-"):
        number = filename[len("<ipython-input-"):].split("-", 1)[0]
        if number.isdigit():
            return f"notebook cell [{number}]"
    # An IPython shell keeps the map from a cell's file name to its execution count.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    number = getattr(getattr(shell, "compile", None), "_filename_map", {}).get(filename)
    return f"notebook cell [{number}]" if number is not None else "notebook cell"


def location(filename: str, line: int) -> str:
    """``'notebook cell [n], line k'`` for a cell, else ``'file:line'``."""
    cell = notebook_cell(filename)
    if cell is not None:
        return f"{cell}, line {line}"
    return f"{filename}:{line}"


# A code object's repr ends in "at <file>:<line>"; for a cell, that names the cell.
_CELL_CODE = re.compile(r" at (<ipython-input-\d+-\w+>|\S*/ipykernel_\S+?\.py):(\d+)$")


def change_where(change: Change) -> str | None:
    """`change.where`, with the cell's number when the new code came from a notebook cell."""
    if change.where == "notebook cell":
        match = _CELL_CODE.search(change.new)
        if match:
            return location(match.group(1), int(match.group(2)))
    return change.where


def describe_changes(changes: Sequence[Change]) -> str:
    """One line per change, for messages: ``  - what: old -> new (new definition at where)``."""
    lines = []
    for c in changes:
        where_text = change_where(c)
        where = f" (new definition at {where_text})" if where_text else ""
        lines.append(f"  - {c.what}: {c.old} -> {c.new}{where}")
    return "\n".join(lines)


def change_lines(changes: Sequence[Change], indent: str) -> list[str]:
    """Three lines per change (what, old, new), for `jaxworld.explain`."""
    lines = []
    for c in changes:
        where_text = change_where(c)
        where = f"  [new definition at {where_text}]" if where_text else ""
        lines.append(f"{indent}- {c.what}")
        lines.append(f"{indent}    old: {c.old}")
        lines.append(f"{indent}    new: {c.new}{where}")
    return lines
