"""The code that ran during a trace, read from the jaxpr it made (issue #11).

Every equation of a jaxpr carries the Python traceback of the moment it was bound
(`eqn.source_info.traceback`, recorded by JAX anyway). The user code objects in those tracebacks,
below the frame that started the trace, are code that ran and shaped the trace. A record must
reach each of them. One that a walk from the function and its arguments did not reach (a callback
registered in a library's registry, a function found by a computed name) ran through a path the
record cannot watch: rather than trust it, the record reports a change at every check.

Why not a profiler: `sys.setprofile` (the only per-call hook on Python 3.11) made a trace 2.5x
slower and `cProfile` 2.7x (measured on a 4-layer MLP loss, 10,081 profile events for a 1.5 ms
trace); reading the tracebacks costs a few percent and nothing when no uncovered code ran.
What this cannot see: user code that ran without any JAX operation being bound while it was on
the stack (a helper returning a Python float) and that nothing reachable refers to.
"""

from __future__ import annotations

import types
from typing import Any

from .._compat import STAGING_FRAMES, ClosedJaxpr, Jaxpr, jaxprs_in_params
from ._classify import is_user_file


def user_code_that_ran(jaxpr: ClosedJaxpr | Jaxpr,
                       boundary: types.CodeType) -> set[types.CodeType]:
    """User code objects on the stack, below `boundary`'s frame, when equations were bound."""
    below: list[types.CodeType] = []  # every frame's code below the boundary, repeats and all
    stack = [getattr(jaxpr, "jaxpr", jaxpr)]
    seen: set[int] = set()
    while stack:
        j = stack.pop()
        if id(j) in seen:
            continue
        seen.add(id(j))
        for eqn in j.eqns:
            traceback = eqn.source_info.traceback
            if traceback is not None:
                codes = traceback.raw_frames()[0]  # innermost first
                try:
                    below += codes[:codes.index(boundary)]
                except ValueError:  # traced elsewhere (a cached sub-jaxpr): not this trace
                    pass
            stack.extend(jaxprs_in_params(eqn.params))
    # Deduplicated by id (hashing a code object hashes its contents), user code picked once.
    ran = dict(zip(map(id, below), below, strict=True)).values()
    return {c for c in ran if c.co_filename != "<string>" and is_user_file(c.co_filename)}


def _sub_jaxprs(jaxpr: ClosedJaxpr | Jaxpr) -> dict[int, Any]:
    """Every jaxpr nested in `jaxpr`'s equations (a `jax.jit`'s, a scan body, ...), by id."""
    found: dict[int, Any] = {}
    stack = list(jaxprs_in_params_of(getattr(jaxpr, "jaxpr", jaxpr)))
    while stack:
        j = stack.pop()
        if id(j) in found:
            continue
        found[id(j)] = j
        stack.extend(jaxprs_in_params_of(getattr(j, "jaxpr", j)))
    return found


def jaxprs_in_params_of(jaxpr: Jaxpr) -> list:
    return [sub for eqn in jaxpr.eqns for sub in jaxprs_in_params(eqn.params)]


def _runs_user_code(jaxpr: ClosedJaxpr | Jaxpr) -> bool:
    """Whether user code was on the stack *inside* the trace that made `jaxpr` when one of its
    equations was bound (the frames before the first staging frame: the callers of the nested
    `jax.jit`, beyond it, do not count; a `jnp` function jitted inside user code runs none)."""
    stack, seen = [getattr(jaxpr, "jaxpr", jaxpr)], set()
    while stack:
        j = stack.pop()
        if id(j) in seen:
            continue
        seen.add(id(j))
        for eqn in j.eqns:
            traceback = eqn.source_info.traceback
            if traceback is not None:
                for c in traceback.raw_frames()[0]:  # innermost first
                    if (c.co_filename, c.co_name) in STAGING_FRAMES:
                        break
                    if c.co_filename != "<string>" and is_user_file(c.co_filename):
                        return True
            stack.extend(getattr(sub, "jaxpr", sub) for sub in jaxprs_in_params(eqn.params))
    return False


def reused_user_traces(old: ClosedJaxpr, new: ClosedJaxpr) -> list[str]:
    """Nested jaxprs that a re-trace after a change got back from JAX's caches unchanged (the
    very objects of the old trace) and that ran user code when they were traced.

    A cache keyed on something the change did not touch (a library's `jax.jit`, with a user's
    function among its static arguments: diffrax's `diffeqsolve`, optimistix's solvers) hands
    back the old world's trace of that code: the re-trace is stale unless every `jax.jit`
    traces again (`_wrap._Entry._retrace` falls back to the global bump then).
    """
    old_subs = _sub_jaxprs(old)
    reused = [j for key, j in _sub_jaxprs(new).items() if old_subs.get(key) is j]
    return [_label(j) for j in reused if _runs_user_code(j)]


def _label(jaxpr: Any) -> str:
    debug = getattr(getattr(jaxpr, "jaxpr", jaxpr), "debug_info", None)
    return getattr(debug, "func_name", None) or "a nested jaxpr"
