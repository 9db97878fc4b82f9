"""Notebooks: advance the epoch after every executed cell.

In a notebook, each cell is a new world: a helper redefined in one cell must be seen by a Hessian
prepared in an earlier one. `%load_ext jaxworld` registers an IPython ``post_run_cell`` hook that
calls `jaxworld.advance()` after every cell (also after a cell that raised: it may have redefined
something before failing). A cell that changed nothing the live traces depend on makes the
advance a no-op: nothing re-traces or re-compiles.

Importing jaxworld inside a running IPython shell or kernel registers the hook automatically.
To opt out:

- set the environment variable ``JAXWORLD_NO_AUTO_ADVANCE=1`` before importing jaxworld, or
- call ``jaxworld.auto_advance(False)`` (removes the hook; ``jaxworld.auto_advance(True)`` or
  ``%load_ext jaxworld`` puts it back).

Without the hook, call `jaxworld.advance()` yourself after changing code. IPython is never a
dependency of jaxworld: it is only looked up when it is already imported.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from . import _epoch

_ENV_OPT_OUT = "JAXWORLD_NO_AUTO_ADVANCE"
_lock = threading.Lock()


def _advance_after_cell(result: Any = None) -> None:
    """The ``post_run_cell`` hook: one new world per executed cell."""
    _epoch.advance()


def _registered(ip: Any) -> bool:
    return _advance_after_cell in ip.events.callbacks.get("post_run_cell", ())


def load_ipython_extension(ip: Any) -> None:
    """Register the hook that calls `jaxworld.advance()` after every cell of shell `ip`.

    Called by ``%load_ext jaxworld``; idempotent (the hook is never registered twice).

    Example (in IPython or Jupyter):
      >>> %load_ext jaxworld  # doctest: +SKIP
    """
    with _lock:
        if not _registered(ip):
            ip.events.register("post_run_cell", _advance_after_cell)


def unload_ipython_extension(ip: Any) -> None:
    """Remove the hook registered by `load_ipython_extension` (``%unload_ext jaxworld``)."""
    with _lock:
        while _registered(ip):
            ip.events.unregister("post_run_cell", _advance_after_cell)


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


def auto_advance(enabled: bool = True) -> bool:
    """Turn the advance-after-every-cell hook of the running IPython shell on or off.

    Importing jaxworld in IPython or Jupyter turns it on (unless the environment variable
    ``JAXWORLD_NO_AUTO_ADVANCE=1`` is set). ``jaxworld.auto_advance(False)`` turns it off; then
    call `jaxworld.advance()` yourself after changing code.

    Args:
      enabled: True to register the hook, False to remove it.

    Returns:
      Whether the hook is now registered (False outside IPython).

    Example:
      >>> import jaxworld
      >>> jaxworld.auto_advance(False)  # outside IPython: nothing to do
      False
    """
    ip = _running_shell()
    if ip is None:
        return False
    if enabled:
        load_ipython_extension(ip)
    else:
        unload_ipython_extension(ip)
    return _registered(ip)


def _opted_out() -> bool:
    return os.environ.get(_ENV_OPT_OUT, "").strip().lower() not in ("", "0", "false", "no")


def register_if_in_ipython() -> None:
    """Called when jaxworld is imported: register the hook in a running IPython shell."""
    if _opted_out():
        return
    ip = _running_shell()
    if ip is not None and hasattr(ip, "events"):
        load_ipython_extension(ip)
