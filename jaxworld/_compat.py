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

import gc
import operator
import os
import sys
import weakref
from collections.abc import Callable

import jax
from jax import api_util as _public_api_util

# Private modules first (ruff's order), bound to underscored names: nothing outside this file
# reaches into them. Then the public ones.
from jax._src import ad_checkpoint as _ad_checkpoint
from jax._src import api_util as _api_util
from jax._src import compute_on as _compute_on
from jax._src import core as _core
from jax._src import pjit as _pjit
from jax._src import traceback_util as _traceback_util
from jax._src import tree_util as _tree_util
from jax._src import util as _util
from jax._src.config import trace_context as _trace_context
from jax._src.config import trace_context_names as _trace_context_names
from jax._src.interpreters import ad as _ad
from jax._src.interpreters import batching as _batching
from jax._src.interpreters import mlir as _mlir
from jax._src.interpreters import partial_eval as _pe
from jax._src.lax import lax as _lax
from jax._src.state import discharge as _discharge
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

_pytree_registry = _private(_tree_util, "_registry")  # type -> (flatten, unflatten) registration


def pytree_node_functions(cls: type) -> tuple | None:
    """The (flatten, unflatten) functions `cls` was registered with as a pytree node, or None.

    JAX has no public lookup; `jax.tree_util.register_pytree_node` and its keyed and dataclass
    forms all write this table (a registration cannot be changed once made)."""
    entry = _pytree_registry.get(cls)
    return None if entry is None else (entry.to_iter, entry.from_iter)

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


# -- which of JAX's caches hold a staged trace (scoped invalidation, `_caches.py`) -------------
# In jax 0.10.2 every jaxpr JAX stages out of a Python callable (a `jax.jit`, a `scan` / `cond` /
# `while_loop` body, `custom_jvp` / `custom_vjp`, `checkpoint`, `shard_map`, `make_jaxpr`,
# `eval_shape`) is traced by `pe.trace_to_jaxpr`, a `weakref_lru_cache` keyed on the callable.
# Some callers cache again, keyed on the same callable. A trace is attributed by the frames on
# the stack: each frame below names its cache and the local that is the cache's key.
_JAX_DIR = os.path.dirname(jax.__file__) + os.sep
_JAXWORLD_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _frame_of(module, name: str) -> tuple[str, str]:
    function = _private(module, name)
    code = getattr(function, "__code__", None)
    return (code.co_filename if code is not None else module.__file__), name


# (file, function) of a frame -> the weakref_lru_cache keyed on its local `fun`.
_CACHED_TRACERS = {
    _frame_of(_pe, "trace_to_jaxpr"): _private(_pe, "trace_to_jaxpr"),
    _frame_of(_ad_checkpoint, "_trace_to_jaxpr"): _private(_ad_checkpoint, "_trace_to_jaxpr"),
    _frame_of(_compute_on, "_trace_to_jaxpr"): _private(_compute_on, "_trace_to_jaxpr"),
    _frame_of(_discharge, "_initial_style_jaxpr"): _private(_discharge, "_initial_style_jaxpr"),
    _frame_of(_lax, "_trace_composite_to_jaxpr"): _private(_lax, "_trace_composite_to_jaxpr"),
}
# The frame of `pe.trace_to_jaxpr`, whose local `trace` is the staging trace it created.
_STAGING_FRAME = _frame_of(_pe, "trace_to_jaxpr")
# `pe.trace_to_jaxpr_dynamic` (no cache of its own): jaxworld's traces use it, and so do JAX's
# transformations of jaxprs (`batch_jaxpr`, `partial_eval_jaxpr_nounits`, transposes), whose
# caches are keyed on the jaxpr and die with it; an executable compiled from such a trace is
# found at lowering. Any other caller (user or library code) may cache by its own key: unknown.
_UNCACHED_STAGING_FRAME = (_pe.__file__, "trace_to_jaxpr_dynamic")
# Staging traces that JAX's linearization makes for tangents: their jaxpr goes into the
# enclosing trace (or back to the caller of `jax.linearize` / `jax.vjp`), never into a cache
# keyed on a callable (`linearize_jaxpr` is keyed on the jaxpr).
_TANGENT_FRAMES = frozenset(
    (_ad.__file__, name)
    for name in ("linearize", "linearize_subtrace", "linearize_subtrace_2", "_linearize_jaxpr"))
# The frames in which a nested trace starts: in a traceback (innermost first), the frames before
# the first of them ran inside that trace (`_deps._ran.reused_user_traces`).
STAGING_FRAMES = frozenset({*_CACHED_TRACERS, _UNCACHED_STAGING_FRAME})
# `jax.jit`'s Python path: `_infer_params(fun, ji, ...)` (its `_infer_params_cached` is keyed on
# `fun`, its C++ cache on `fun` and `ji`'s options) and `cache_miss`, which holds `fun` until
# the executable is in the C++ cache (the compile comes after the trace).
_INFER_PARAMS_FRAME = (_private(_pjit, "_infer_params").__code__.co_filename, "_infer_params")
_CACHE_MISS_FRAME = (_INFER_PARAMS_FRAME[0], "cache_miss")
# `jax.jit(f).trace / .lower` (ahead of time): the objects they return are the user's to keep.
_AOT_FRAME = (_INFER_PARAMS_FRAME[0], "jit_trace")
_infer_params_cached = _private(_pjit, "_infer_params_cached")
_cpp_pjit = _private(_pjit, "_cpp_pjit")
# `jax.jit`'s evaluation of a jaxpr (a `pjit` equation run eagerly, as under an eager `vmap`
# of a `jax.jit`): its executable is cached on the jaxpr, in `_get_jaxpr_as_fun` (whose result
# keys the C++ cache) and `_pjit_lower`.
_CALL_IMPL_FRAME = (_INFER_PARAMS_FRAME[0], "call_impl_cache_miss")
_JAXPR_CACHES = (_private(_pjit, "_get_jaxpr_as_fun"), _private(_pjit, "_pjit_lower"))
# Frames whose result goes into a cache, with the local that keys it.
_KEYED_FRAMES = {**{where: "fun" for where in _CACHED_TRACERS},
                 _INFER_PARAMS_FRAME: "fun", _CACHE_MISS_FRAME: "fun", _CALL_IMPL_FRAME: "jaxpr"}


class Staged:
    """What a staging trace on the stack will leave in JAX's caches (`staged_into`)."""

    __slots__ = ("traced", "jitted", "unknown")

    def __init__(self):
        self.traced: list[tuple[object, Callable]] = []  # (cache, fun): evict_weakref(fun)
        self.jitted: list[tuple[Callable, object]] = []  # (fun, jit info) of each jax.jit
        self.unknown: str | None = None  # why some cache holding it is not known


def staged_into(trace) -> Staged | None:
    """The JAX caches that will hold what is staged into `trace` (None if nothing is staged).

    Follows the stack of Python frames: every staging trace enclosing `trace` must have been
    created by `pe.trace_to_jaxpr` (cached by its callable) or by jaxworld itself; otherwise, or
    under `jax.jit(...).lower/trace`, `Staged.unknown` says why the caches are not all known.
    """
    unowned = {id(t): t for t in enclosing_traces(trace) if isinstance(t, _DynamicJaxprTrace)}
    if not unowned:
        return None
    staged = Staged()
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        where = (code.co_filename, code.co_name)
        if where in _TANGENT_FRAMES:
            for value in frame.f_locals.values():
                unowned.pop(id(value), None)
        elif where in _KEYED_FRAMES or where == _UNCACHED_STAGING_FRAME or where == _AOT_FRAME:
            local = frame.f_locals
            fun = local.get("fun")
            if where == _AOT_FRAME:
                staged.unknown = ("traced ahead of time (jax.jit(...).trace / .lower): the "
                                  "Traced / Lowered / Compiled object keeps it")
            elif where == _UNCACHED_STAGING_FRAME:
                if _called_from_jax_or_jaxworld(frame):
                    unowned.pop(id(local.get("trace")), None)
            elif where in _CACHED_TRACERS and fun is not None:
                staged.traced.append((_CACHED_TRACERS[where], fun))
                if where == _STAGING_FRAME:
                    unowned.pop(id(local.get("trace")), None)
            elif where == _INFER_PARAMS_FRAME and fun is not None:
                staged.jitted.append((fun, local.get("ji")))
        frame = frame.f_back
    if unowned and staged.unknown is None:
        staged.unknown = (f"{len(unowned)} staging trace(s) made outside the caches jaxworld "
                          "knows (not by jax.jit, a control-flow body, custom_jvp / custom_vjp, "
                          "checkpoint, shard_map, make_jaxpr or eval_shape)")
    return staged


_PROFILER_FILE = _private(_pe, "profiler").__file__


def _called_from_jax_or_jaxworld(frame) -> bool:
    frame = frame.f_back
    while frame is not None and frame.f_code.co_filename == _PROFILER_FILE:
        frame = frame.f_back  # `trace_to_jaxpr_dynamic`'s profiling decorator
    return frame is not None and frame.f_code.co_filename.startswith((_JAX_DIR, _JAXWORLD_DIR))


def staging_in_flight(funs: dict[int, object]) -> str | None:
    """A thread (this one included) now inside a `jax.jit` trace or compile, or a cached trace,
    of one of `funs` (by id): its result is not in JAX's caches yet, so it cannot be evicted."""
    for thread_id, frame in sys._current_frames().items():
        while frame is not None:
            code = frame.f_code
            local_name = _KEYED_FRAMES.get((code.co_filename, code.co_name))
            if local_name is not None:
                fun = frame.f_locals.get(local_name)
                if fun is not None and id(fun) in funs and funs[id(fun)] is fun:
                    return f"thread {thread_id} is tracing or compiling {_name(fun)}"
            frame = frame.f_back
    return None


def _name(fun) -> str:
    return getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None) or repr(fun)


def evict_traced(cache, fun) -> None:
    """Drop every entry of a `weakref_lru_cache` keyed on `fun`."""
    cache.evict_weakref(fun)


class _ClearCachesSeen:
    """Registered with JAX's own cache registry: `jax.clear_caches()` calls `cache_clear`.

    `jax.clear_caches()` empties the map from (callable, options) to each `jax.jit` object's
    executable cache. A `jax.jit` object made before it keeps its own cache, which
    `_cpp_pjit(fun, jit_info)` (the lookup `evict_jitted` relies on) no longer finds: it makes a
    new object with a new, empty cache. So the `jax.jit` objects alive at a clear are noted then
    (weakly, by their callable), and `evict_jitted` clears theirs as well. JAX calls
    `cache_clear` before it empties the map, and no `jax.jit` object made later is cut off.
    """

    def __init__(self) -> None:
        self.cut_off: dict[int, list[weakref.ref]] = {}  # id(fun) -> jax.jit objects of fun

    def cache_clear(self) -> None:
        cut_off = self.cut_off
        for refs in cut_off.values():
            refs[:] = [r for r in refs if r() is not None]
        for obj in gc.get_objects():  # ~25 ms per 100,000 objects; a clear re-compiles anyway
            if type(obj) is _PjitFunction:
                fun = getattr(obj, "_fun", None)
                if fun is not None:
                    refs = cut_off.setdefault(id(fun), [])
                    if not any(r() is obj for r in refs):
                        refs.append(weakref.ref(obj))
        for key in [k for k, refs in cut_off.items() if not refs]:
            del cut_off[key]

    def jits_of(self, fun) -> list:
        return [obj for r in self.cut_off.get(id(fun), ()) if (obj := r()) is not None
                and getattr(obj, "_fun", None) is fun]


_PjitFunction = type(jax.jit(operator.pos))
_CLEAR_CACHES_SEEN = _ClearCachesSeen()  # held here: the registry holds it weakly
_private(_util, "register_cache")(_CLEAR_CACHES_SEEN, "jaxworld: jax.clear_caches() seen")


def evict_jitted(fun, jit_info) -> None:
    """Drop every trace and executable `jax.jit` caches for `fun` (any `jax.jit(fun, ...)`
    object with these options: the C++ cache is keyed on `fun`)."""
    _infer_params_cached.evict_weakref(fun)
    _CACHED_TRACERS[_STAGING_FRAME].evict_weakref(fun)  # as `jax.jit(f).clear_cache()` does
    if jit_info is None:
        return
    _cpp_pjit(fun, jit_info)._clear_cache()
    for jitted in _CLEAR_CACHES_SEEN.jits_of(fun):  # made before a `jax.clear_caches()`
        jitted._clear_cache()


def lowered_by() -> Staged:
    """What will hold the executable being compiled now (the lowering rule's caller): the
    `jax.jit` functions whose call compiles it, or the jaxpr JAX's evaluation of a `pjit`
    equation caches it on; `Staged.unknown` says why, when it is neither."""
    staged = Staged()
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        where = (code.co_filename, code.co_name)
        if where == _CACHE_MISS_FRAME:
            local = frame.f_locals
            fun = local.get("fun")
            if fun is not None:
                staged.jitted.append((fun, local.get("jit_info")))
        elif where == _CALL_IMPL_FRAME:
            jaxpr = frame.f_locals.get("jaxpr")
            if jaxpr is not None:
                staged.traced.extend((cache, jaxpr) for cache in _JAXPR_CACHES)
        frame = frame.f_back
    if not staged.jitted and not staged.traced:
        staged.unknown = ("compiled outside jax.jit's call path (ahead of time, with "
                          "jax.jit(...).lower(...).compile())")
    return staged


def evict_callable(value) -> None:
    """Drop every trace JAX caches for `value` (a `jax.jit` function, or a callable JAX keys a
    traced jaxpr on, such as a `scan` body), if it is one."""
    fun, jit_info = getattr(value, "_fun", None), getattr(value, "_jit_info", None)
    if fun is not None and jit_info is not None and hasattr(value, "_clear_cache"):
        evict_jitted(fun, jit_info)
        value = fun
    if not callable(value):
        return
    try:
        for cache in _CACHED_TRACERS.values():
            cache.evict_weakref(value)
    except TypeError:  # not weak-referenceable: JAX cannot have cached it by identity
        pass
