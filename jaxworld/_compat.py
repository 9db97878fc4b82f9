"""jaxworld's boundary with JAX: every JAX name it uses outside the public `jax` API, by name.

Checked on jax 0.10.2 (CPU). The rest of jaxworld imports *names* from here, never a JAX module
object and never `jax._src` (tests/test_jax_boundary.py lists the names in use and fails when a
new private one appears elsewhere). Two kinds of names:

- public ones from `jax.extend.core`, `jax.extend.*`, `jax.errors`, `jax.api_util` and
  `jax.interpreters.*` (stable enough to import directly; collected here so that a newcomer sees
  the whole surface in one file);
- private ones (`jax._src...`), each fetched by `_private`, which fails at import with the name,
  the JAX version it was checked on and what to do, instead of an `AttributeError` deep inside a
  transformation. Each says why jaxworld needs it. When JAX moves one of these, this is the only
  module that needs to change.
"""

from __future__ import annotations

import operator

import jax
from jax import api_util as _public_api_util

# Private modules first (ruff's order), bound to underscored names: nothing outside this file
# reaches into them. Then the public ones.
from jax._src import api_util as _api_util
from jax._src import core as _core
from jax._src import traceback_util as _traceback_util
from jax._src.config import trace_context as _trace_context
from jax._src.config import trace_context_names as _trace_context_names
from jax._src.interpreters import ad as _ad
from jax._src.interpreters import batching as _batching
from jax._src.interpreters import mlir as _mlir
from jax._src.interpreters import partial_eval as _pe
from jax.errors import JaxprTypeError as JaxprTypeError
from jax.extend import linear_util as _linear_util
from jax.extend import source_info_util as _source_info_util
from jax.extend.core import ClosedJaxpr as ClosedJaxpr
from jax.extend.core import DropVar as DropVar
from jax.extend.core import Jaxpr as Jaxpr
from jax.extend.core import Primitive as Primitive
from jax.extend.core import check_jaxpr as check_jaxpr
from jax.extend.core import jaxprs_in_params as jaxprs_in_params
from jax.extend.core import new_jaxpr_eqn as new_jaxpr_eqn
from jax.interpreters import ad as _ad_public
from jax.interpreters import batching as _batching_public
from jax.interpreters import mlir as _mlir_public
from jax.interpreters import partial_eval as _pe_public

CHECKED_ON = "0.10.2"


def _private(module, name: str):
    """`module.name`, or an ImportError that says which JAX-private name moved, and the fix."""
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(
            f"jaxworld needs {module.__name__}.{name}, a JAX-private name it was checked on with "
            f"jax {CHECKED_ON}; this jax ({jax.__version__}) does not have it. Install jax "
            f"{CHECKED_ON} (`pip install jax=={CHECKED_ON}`), or update jaxworld/_compat.py for "
            "this jax: it is the only module that names JAX privates.") from None


# -- tracing a Python callable into a jaxpr, around `jax.jit`'s caches ---------------------------
# `jax.jit`'s caches key on the callable's identity and would hand back a stale jaxpr
# (JAX-NOTES "pitfalls"): jaxworld traces with `trace_to_jaxpr_dynamic` directly.
debug_info = _public_api_util.debug_info
infer_argnums_and_argnames = _private(_api_util, "infer_argnums_and_argnames")  # static_argnames
wrap_init = _linear_util.wrap_init
trace_to_jaxpr_dynamic = _pe_public.trace_to_jaxpr_dynamic
convert_constvars_jaxpr = _private(_pe, "convert_constvars_jaxpr")  # closed-over tracers as inputs

# -- jaxprs, avals, effects ---------------------------------------------------------------------
Tracer = _core.Tracer  # public as `jax.core.Tracer`, which is on its way out
typeof = _private(_core, "typeof")  # the aval of a value (as `jax.typeof`, plus tracers)
typecompat = _private(_core, "typecompat")  # aval equality up to weak type (typecheck rule)
eval_jaxpr = _private(_core, "eval_jaxpr")  # `jax.core.eval_jaxpr` is deprecated
positional_effects = _private(_core, "positional_effects")  # a closure's effects, per input
eqn_effects = _private(_core, "eqn_effects")  # a new equation's effects (DCE rule)
# The abstract value of an argument leaf (`jax.core.ShapedArray` and friends): dependency records
# walk an entry's argument skeleton, whose array leaves are avals.
AbstractValue = _core.AbstractValue

# -- the rule tables `world_call` registers in (`_primitive.py`'s registration block) -----------
custom_typechecks = _private(_core, "custom_typechecks")
primitive_jvps = _ad_public.primitive_jvps
primitive_linearizations = _private(_ad, "primitive_linearizations")  # direct linearize (jax>=0.7)
fancy_transposes = _private(_ad, "fancy_transposes")  # transpose with accumulators
fancy_primitive_batchers = _batching_public.fancy_primitive_batchers
dce_rules = _pe_public.dce_rules
custom_partial_eval_rules = _pe_public.custom_partial_eval_rules
partial_eval_jaxpr_custom_rules = _pe_public.partial_eval_jaxpr_custom_rules
register_lowering = _mlir_public.register_lowering
lowering_rules = _private(_mlir, "_lowerings")  # read by tests/test_primitive.py only

# -- what the rules and derivers call -----------------------------------------------------------
Zero = _ad_public.Zero  # symbolic zero tangents
instantiate_zeros = _ad_public.instantiate_zeros
jvp_jaxpr = _private(_ad, "jvp_jaxpr")
linearize_jaxpr = _private(_ad, "linearize_jaxpr")
ValAccum = _private(_ad, "ValAccum")  # the accumulator a transpose rule adds cotangents into
project_accums = _private(_ad, "project_accums")
unproject_accums = _private(_ad, "unproject_accums")
backward_pass = _private(_ad, "backward_pass3")  # version-numbered in JAX: the one 0.10.2 uses
batch_jaxpr = _private(_batching, "batch_jaxpr")
moveaxis = _private(_batching, "moveaxis")
dce_jaxpr = _pe_public.dce_jaxpr
partial_eval_jaxpr_nounits = _private(_pe, "partial_eval_jaxpr_nounits")
JaxprTracer = _pe_public.JaxprTracer
PartialVal = _pe_public.PartialVal
new_eqn_recipe = _private(_pe, "new_eqn_recipe")
closed_call_partial_eval_custom_rule = _private(_pe, "closed_call_partial_eval_custom_rule")
# The cached split behind `closed_call_partial_eval_custom_rule` (the same cache, so the derived
# closures hold exactly the jaxprs JAX's rule computes).
closed_jaxpr_partial_eval_custom = _private(_pe, "_closed_jaxpr_partial_eval_custom_cached")
jaxpr_subcomp = _mlir_public.jaxpr_subcomp
ir_consts = _private(_mlir, "ir_consts")
current_source_info = _source_info_util.current  # equation provenance
_DynamicJaxprTrace = _private(_pe, "DynamicJaxprTrace")
_EvalTrace = _private(_core, "EvalTrace")
_trace_ctx = _private(_core, "trace_ctx")
# Whether this thread is inside no JAX trace (`jax.clear_caches()` must not run inside one).
trace_state_clean = _private(_core, "trace_state_clean")
shaped_abstractify = _private(_core, "shaped_abstractify")  # the aval of an argument leaf
# Frames of files registered here are left out of the tracebacks JAX shows (as for jax's own).
register_traceback_exclusion = _private(_traceback_util, "register_exclusion")

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
    return _trace_ctx.trace


def is_eval_trace(trace) -> bool:
    return isinstance(trace, _EvalTrace)


def is_staging_trace(trace) -> bool:
    """Whether `trace` stages out a jaxpr (`jax.jit`, `make_jaxpr`, a `scan` / `cond` body)."""
    return isinstance(trace, _DynamicJaxprTrace)


def enclosing_traces(trace):
    """The chain from `trace` outwards, following `parent_trace` links where a trace has one."""
    seen = set()
    while trace is not None and id(trace) not in seen:
        seen.add(id(trace))
        yield trace
        trace = getattr(trace, "parent_trace", None)


# Configuration flags that change what a trace computes but that JAX leaves out of `jax.jit`'s
# cache key (`trace_context()`): plain `jax.jit` misses changes to them (JAX issue #40609 is this
# class). jaxworld puts them in its own entry key and in every dependency record.
OUT_OF_KEY_FLAGS = ("jax_default_prng_impl", "jax_enable_custom_prng", "jax_legacy_prng_key")


def _flag_reader(name: str):
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
