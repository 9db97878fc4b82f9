"""Error classes. Every message names the public API, says what went wrong, and how to fix it."""

from __future__ import annotations

from ._compat import traceback_util


class WorldChangeError(RuntimeError):
    """A re-trace in a new world changed a signature that an enclosing trace already relied on.

    jaxworld never mixes worlds silently (Mooncake.jl #1218 is what happens otherwise): when a
    re-trace at a new epoch changes the output structure, shape or dtype of a closure that a live
    enclosing trace has used, or of a derived closure whose consumers were built for the old one,
    it raises this error instead.
    """


class StaleClosureError(RuntimeError):
    """A closure's dependencies changed and the policy is ``"error"`` (`jaxworld.set_policy`)."""


# Users should see their own frames, not jaxworld's, in tracebacks (as with JAX and equinox).
traceback_util.register_exclusion(__file__.rsplit("/", 1)[0])
