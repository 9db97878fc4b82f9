"""Every JAX-private name jaxworld uses, in one place.

Checked on jax 0.10.2 (CPU). When JAX moves one of these, this is the only module that needs to
change. Each import says why jaxworld needs it.
"""

from __future__ import annotations

import operator

# Tracing a Python callable into a jaxpr without going through `jax.jit`'s caches, which key on
# the callable's identity and would hand back a stale jaxpr (JAX-NOTES "pitfalls"): `api_util`
# here and `linear_util` (as `lu`) below.
from jax._src import api_util as api_util  # noqa: F401

# Core data structures: jaxprs, avals, primitives, the current trace (to tell a live enclosing
# trace from a finished one, issue #2 item 8).
from jax._src import core as core  # noqa: F401

# Tracing a Python callable without `jax.jit`'s caches, continued (see `api_util` above).
from jax._src import linear_util as lu  # noqa: F401

# Equation provenance.
from jax._src import source_info_util as source_info_util  # noqa: F401

# Hide jaxworld's frames from user tracebacks, as JAX and equinox do.
from jax._src import traceback_util as traceback_util  # noqa: F401

# Symbolic zero tangents.
from jax._src.ad_util import Zero as Zero  # noqa: F401

# The part of JAX's configuration that changes traces (dtype promotion, x64, matmul precision,
# ...). `jax.jit` keys its caches on it; jaxworld records it in dependency records.
from jax._src.config import trace_context as _trace_context
from jax._src.config import trace_context_names as _trace_context_names

# Rule tables for the `world_call` primitive (see `_primitive.py`).
from jax._src.interpreters import ad as ad  # noqa: F401  # jvp, linearize, transpose tables
from jax._src.interpreters import batching as batching  # noqa: F401  # fancy_primitive_batchers
from jax._src.interpreters import mlir as mlir  # noqa: F401  # lowering
from jax._src.interpreters import partial_eval as pe  # noqa: F401  # partial eval, DCE, tracing

# `trace_context()` also holds per-trace state that is not configuration: the context managers
# active at the call site (mesh, user contexts — jaxworld's own world generation among them) and
# the axis environment of an enclosing vmap / shard_map. Recording those would make every record
# "change" whenever it is checked from a different context (or after jaxworld's own bump), so only
# the configuration flags are kept.
_NOT_CONFIGURATION = ("user_context", "axis_env_state")


def _is_configuration(name: str) -> bool:
    return not (name in _NOT_CONFIGURATION or name.endswith("_context_manager"))


_CONFIG_INDICES = tuple(i for i, name in enumerate(_trace_context_names())
                        if _is_configuration(name))
_CONFIG_NAMES = tuple(_trace_context_names()[i] for i in _CONFIG_INDICES)


def jax_trace_config() -> tuple:
    """A hashable snapshot of the JAX configuration flags that change traces (x64, promotion...)."""
    values = _trace_context()
    return tuple((name, values[i]) for name, i in zip(_CONFIG_NAMES, _CONFIG_INDICES, strict=True))


_config_values = operator.itemgetter(*_CONFIG_INDICES, 0)  # never a bare scalar: >= 2 indices


def jax_trace_config_values() -> tuple:
    """The values of `jax_trace_config()` alone, read in ~0.5 us (for dependency-record guards)."""
    return _config_values(_trace_context())


def current_trace():
    """The innermost trace JAX is tracing under (an `EvalTrace` outside transformations)."""
    return core.trace_ctx.trace


def is_eval_trace(trace) -> bool:
    return isinstance(trace, core.EvalTrace)


def enclosing_traces(trace):
    """The chain from `trace` outwards, following `parent_trace` links where a trace has one."""
    seen = set()
    while trace is not None and id(trace) not in seen:
        seen.add(id(trace))
        yield trace
        trace = getattr(trace, "parent_trace", None)


# The abstract value of an argument leaf (`jax.core.ShapedArray` and friends): dependency records
# walk an entry's argument skeleton, whose array leaves are avals.
AbstractValue = core.AbstractValue

# Configuration flags that change what a trace computes but that JAX leaves out of `jax.jit`'s
# cache key (`trace_context()`): plain `jax.jit` misses changes to them (JAX issue #40609 is this
# class). jaxworld puts them in its own entry key and in every dependency record.
OUT_OF_KEY_FLAGS = ("jax_default_prng_impl", "jax_enable_custom_prng", "jax_legacy_prng_key")


def _flag_reader(name: str):
    import jax

    try:
        getattr(jax.config, name)
    except AttributeError:  # a flag this JAX does not have: nothing to read
        return None
    return lambda: getattr(jax.config, name)  # the value in force here (context managers too)


_OUT_OF_KEY = tuple((name, read) for name in OUT_OF_KEY_FLAGS
                    if (read := _flag_reader(name)) is not None)


def out_of_key_config() -> tuple:
    """The values of `OUT_OF_KEY_FLAGS` now, as a hashable tuple of (name, value) pairs."""
    return tuple((name, read()) for name, read in _OUT_OF_KEY)
