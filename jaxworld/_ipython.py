"""Notebooks: each cell, and each top-level statement, runs in the latest world (Julia-style).

In a notebook, each cell is a new world: a helper redefined in one cell must be seen by a Hessian
prepared in an earlier one. `%load_ext jaxworld` installs two things in the IPython shell:

- a ``post_run_cell`` hook that calls `jaxworld.advance()` after every cell (also after a cell
  that raised: it may have redefined something before failing);
- an AST transformer (issue #12) that makes every cell start with a check of the live
  dependency records and repeats it after each top-level statement that defines, binds, imports
  or may mutate (``def``, ``class``, assignments, ``import``, ``del``, compound statements, and
  expression statements containing a call, such as ``M.fill(2.0)`` or a magic). The check
  (`jaxworld._epoch.sync`) advances the world if a record no longer holds. So ``def g(...)``
  followed by ``H(x)`` *in the same cell* gives the new answer, as in Julia, where each top-level
  statement runs in the latest world. The check at the start of a cell runs after IPython's
  ``pre_run_cell`` hooks, so after ``%autoreload``'s reload of edited modules: the first cell
  after a file edit already sees it. A statement that changes nothing costs one check of the live
  records (README, "Notebooks", for the figures); the cell's last expression, whose value IPython
  displays, is left alone (the ``post_run_cell`` advance follows it).

A cell that changed nothing the live traces depend on makes both a no-op: nothing re-traces or
re-compiles.

Importing jaxworld inside a running IPython shell or kernel installs both automatically. To opt
out:

- set ``JAXWORLD_NO_AUTO_ADVANCE=1`` before importing jaxworld (neither is installed), or
  ``JAXWORLD_NO_STATEMENT_ADVANCE=1`` (only the per-cell advance is installed);
- call ``jaxworld.auto_advance(False)`` (removes both; ``jaxworld.auto_advance(True)`` or
  ``%load_ext jaxworld`` puts them back), or ``jaxworld.auto_advance(per_statement=False)``
  (keeps the per-cell advance only).

Without them, call `jaxworld.advance()` yourself after changing code. IPython is never a
dependency of jaxworld: it is only looked up when it is already imported.
"""

from __future__ import annotations

import ast
import os
import sys
import threading
from typing import Any

from . import _epoch

_ENV_OPT_OUT = "JAXWORLD_NO_AUTO_ADVANCE"
_ENV_NO_STATEMENTS = "JAXWORLD_NO_STATEMENT_ADVANCE"
_lock = threading.Lock()


def _advance_after_cell(result: Any = None) -> None:
    """The ``post_run_cell`` hook: one new world per executed cell."""
    _epoch.advance()


def _statement_boundary() -> None:
    """Inserted by the AST transformer: the next statement sees the latest world."""
    _epoch.sync()


# Statements after which the world may have changed. Expression statements count only when they
# contain a call (a method that mutates, `exec`, a magic); a bare name or constant changes nothing.
_BINDING = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AugAssign,
            ast.AnnAssign, ast.Import, ast.ImportFrom, ast.Delete, ast.Global, ast.For,
            ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try, ast.TryStar,
            ast.Match)


def _may_change_the_world(stmt: ast.stmt) -> bool:
    if isinstance(stmt, _BINDING):
        return True
    return isinstance(stmt, ast.Expr) and any(isinstance(n, ast.Call) for n in ast.walk(stmt))


def _boundary_call(at: ast.stmt) -> ast.stmt:
    call = ast.parse("__import__('jaxworld')._ipython._statement_boundary()").body[0]
    return ast.fix_missing_locations(ast.copy_location(call, at))


class StatementAdvancer(ast.NodeTransformer):
    """IPython AST transformer: a records check at the start of each cell and after each
    top-level statement that may change the world (see the module docstring)."""

    def visit_Module(self, node: ast.Module) -> ast.Module:
        if not node.body:
            return node
        body = [_boundary_call(node.body[0])]
        last = len(node.body) - 1
        for i, stmt in enumerate(node.body):
            body.append(stmt)
            # The last expression's value is what IPython displays: nothing may follow it.
            if _may_change_the_world(stmt) and not (i == last and isinstance(stmt, ast.Expr)):
                body.append(_boundary_call(stmt))
        node.body = body
        return node


_TRANSFORMER = StatementAdvancer()


def _registered(ip: Any) -> bool:
    return _advance_after_cell in ip.events.callbacks.get("post_run_cell", ())


def _statements_registered(ip: Any) -> bool:
    return any(t is _TRANSFORMER for t in getattr(ip, "ast_transformers", ()))


def _add_statement_advance(ip: Any) -> None:
    if hasattr(ip, "ast_transformers") and not _statements_registered(ip):
        ip.ast_transformers.append(_TRANSFORMER)


def _remove_statement_advance(ip: Any) -> None:
    if hasattr(ip, "ast_transformers"):
        ip.ast_transformers[:] = [t for t in ip.ast_transformers if t is not _TRANSFORMER]


def load_ipython_extension(ip: Any, *, per_statement: bool = True) -> None:
    """Make every cell (and every top-level statement) of shell `ip` run in the latest world.

    Called by ``%load_ext jaxworld``; idempotent (nothing is registered twice).

    Example (in IPython or Jupyter):
      >>> %load_ext jaxworld  # doctest: +SKIP
    """
    with _lock:
        if not _registered(ip):
            ip.events.register("post_run_cell", _advance_after_cell)
        if per_statement:
            _add_statement_advance(ip)
        else:
            _remove_statement_advance(ip)


def unload_ipython_extension(ip: Any) -> None:
    """Remove what `load_ipython_extension` installed (``%unload_ext jaxworld``)."""
    with _lock:
        while _registered(ip):
            ip.events.unregister("post_run_cell", _advance_after_cell)
        _remove_statement_advance(ip)


def _running_shell() -> Any:
    """The running IPython shell, if IPython is already imported and a shell exists."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return None
    try:
        return get_ipython()
    except Exception:  # a half-initialised IPython: behave as if there were none
        return None


def auto_advance(enabled: bool = True, *, per_statement: bool = True) -> bool:
    """Turn the automatic advances of the running IPython shell on or off.

    Importing jaxworld in IPython or Jupyter turns them on (unless ``JAXWORLD_NO_AUTO_ADVANCE=1``
    is set): an advance after every cell and a records check after every top-level statement
    that may change the world. ``jaxworld.auto_advance(False)`` turns both off; then call
    `jaxworld.advance()` yourself after changing code. ``jaxworld.auto_advance(per_statement=
    False)`` keeps only the advance after every cell.

    Args:
      enabled: True to install the hooks, False to remove them.
      per_statement: with ``enabled``, whether to install the per-statement check too.

    Returns:
      Whether the per-cell advance is now installed (False outside IPython).

    Example:
      >>> import jaxworld
      >>> jaxworld.auto_advance(False)  # outside IPython: nothing to do
      False
    """
    ip = _running_shell()
    if ip is None:
        return False
    if enabled:
        load_ipython_extension(ip, per_statement=per_statement)
    else:
        unload_ipython_extension(ip)
    return _registered(ip)


def _env_set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def register_if_in_ipython() -> None:
    """Called when jaxworld is imported: install the hooks in a running IPython shell."""
    if _env_set(_ENV_OPT_OUT):
        return
    ip = _running_shell()
    if ip is not None and hasattr(ip, "events"):
        load_ipython_extension(ip, per_statement=not _env_set(_ENV_NO_STATEMENTS))
