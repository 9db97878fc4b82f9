"""Error classes. Every message names the public API, says what went wrong, and how to fix it."""

from __future__ import annotations

import os
import sys

import jax

from ._compat import register_traceback_exclusion


class WorldChangeError(RuntimeError):
    """A re-trace in a new world changed a signature that an enclosing trace already relied on.

    jaxworld never mixes worlds silently (Mooncake.jl #1218 is what happens otherwise): when a
    re-trace at a new epoch changes the output structure, shape or dtype of a closure that a live
    enclosing trace has used, or of a derived closure whose consumers were built for the old one,
    it raises this error instead.
    """


class StaleClosureError(RuntimeError):
    """A closure's dependencies changed and the policy is ``"error"`` (`jaxworld.set_policy`)."""


class StaleClosureWarning(UserWarning):
    """A closure's dependencies changed and the policy is ``"warn"``: it is re-traced.

    Filter on it like any warning class, e.g.
    ``warnings.filterwarnings("ignore", category=jaxworld.StaleClosureWarning)``.
    """


# Frames of these packages are never "the user's call site": jaxworld's own, JAX's (a wrapped
# function re-traced inside `jax.grad` is reached from `jax/_src/interpreters/ad.py`), and the
# libraries that call user functions (issue #14). A library not imported is not looked up.
_LIBRARY_PACKAGES = ("jaxworld", "jax", "jaxlib", "equinox", "flax", "optax", "optimistix",
                     "lineax", "diffrax", "blackjax", "numpyro", "jaxopt", "chex")
_library_dirs_cache: dict[frozenset, tuple[str, ...]] = {}


def _library_dirs() -> tuple[str, ...]:
    loaded = frozenset(name for name in _LIBRARY_PACKAGES if name in sys.modules)
    dirs = _library_dirs_cache.get(loaded)
    if dirs is None:
        found = [os.path.dirname(os.path.abspath(jax.__file__)),
                 os.path.dirname(os.path.abspath(__file__))]
        for name in loaded:
            file = getattr(sys.modules[name], "__file__", None)
            if file:
                found.append(os.path.dirname(os.path.abspath(file)))
        dirs = _library_dirs_cache[loaded] = tuple(d + os.sep for d in found)
    return dirs


def user_stacklevel() -> int:
    """The `stacklevel` for `warnings.warn` that names the first frame outside the libraries.

    Counted from the caller of `warnings.warn` (level 1). Frames of the standard library that
    sit between libraries (functools, contextlib) are skipped too.
    """
    dirs = _library_dirs()
    stdlib = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith(dirs) or filename.startswith(stdlib)) \
                and not frame.f_code.co_filename.startswith("<frozen "):
            return level
        frame = frame.f_back
        level += 1
    return 1


# Users should see their own frames, not jaxworld's, in tracebacks (as with JAX and equinox).
register_traceback_exclusion(__file__.rsplit("/", 1)[0])
