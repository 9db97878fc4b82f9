"""Shared machinery of the issue #11 regression tests ("dependency records reach all the code a
trace ran"): `tests/test_reach.py` (pure Python + JAX) and `tests/ecosystem/test_reach_models.py`
(equinox, flax).

A `Pattern` is one row of the issue's "Why" list: a setup (notebook-like source that defines `f`
and `args`), a change, and what to compute (a Hessian, a gradient or a value). `check` prepares
the computation one of three ways (`PREPARATIONS`), calls it before the change, makes the change,
advances the world, and compares with plain JAX traced fresh in the new world (a new function
under `jax.jit`, so no JAX cache can hand back an old trace). It also asserts that the change
really changed the answer, so a stale answer cannot pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import os
import re
import sys
import sysconfig
import textwrap
import traceback
import types
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = np.array([0.3, -0.7, 1.1], dtype=np.float32)

KINDS = ("hessian", "grad", "value")

# A file name inside site-packages: code compiled with it is library code to jaxworld, as the
# code of an installed package is (the file need not exist).
LIBRARY_FILE = os.path.join(sysconfig.get_paths()["purelib"], "jaxworld_test_library", "core.py")


# A library's variable class in the style of flax nnx's: the value in a slot, read through a
# method behind a property (shared by the library-state rows and property test).
LIBRARY_VARIABLE = """
class Variable:
    __slots__ = ("_raw",)
    def __init__(self, value):
        self._raw = value
    def get(self):
        return self._raw
    @property
    def value(self):
        return self.get()
    @value.setter
    def value(self, new):
        self._raw = new
"""


def library_code(source: str) -> dict:
    """Run `source` as if it were a module of an installed library; return its namespace."""
    ns = {"__name__": "jaxworld_test_library.core"}
    exec(compile(textwrap.dedent(source), LIBRARY_FILE, "exec"), ns)
    return ns


@dataclasses.dataclass(frozen=True)
class Raised:
    """The outcome of a call that raised (plain JAX raising is an answer to match, too)."""

    type: type
    message: str


@dataclasses.dataclass(frozen=True)
class Program:
    """An observation of a traced program rather than of its values (e.g. the precisions of its
    dot products, which the CPU backend ignores)."""

    features: tuple


def outcome(fn: Callable, args: tuple) -> Any:
    try:
        return jax.block_until_ready(fn(*args))
    except Exception as e:  # noqa: BLE001 - compared with plain JAX's outcome
        return Raised(type(e), str(e))


def call(fn: Callable, args: tuple, pattern: Pattern) -> Any:
    """The default observation: call `fn(*args)`."""
    return outcome(fn, args)


def dot_precisions(fn: Callable, args: tuple, pattern: Pattern) -> Any:
    """The precision attributes of every dot in the StableHLO of `jax.jit(fn)` at `args`."""
    try:
        text = jax.jit(fn, static_argnums=pattern.static_argnums).lower(*args).as_text()
    except Exception as e:  # noqa: BLE001
        return Raised(type(e), str(e))
    found = tuple(re.findall(r"precision = \[([^\]]*)\]", text))
    return Program(("dots", text.count("stablehlo.dot_general"), "precisions", found))


def assert_same(actual: Any, expected: Any, when: str,
                reference: str = "plain JAX traced fresh") -> None:
    """`actual` is the outcome `expected` (plain JAX's): the same values (or error type)."""
    if isinstance(expected, Raised):
        assert isinstance(actual, Raised), (
            f"{when}: plain JAX raises {expected.type.__name__} ({expected.message[:200]}), "
            f"jaxworld returned {actual!r:.300}")
        assert issubclass(actual.type, expected.type), (
            f"{when}: plain JAX raises {expected.type.__name__}, jaxworld raised "
            f"{actual.type.__name__}: {actual.message[:300]}")
        return
    assert not isinstance(actual, Raised), (
        f"{when}: jaxworld raised {actual.type.__name__}: {actual.message[:600]}")
    if isinstance(expected, Program):
        assert actual == expected, f"{when}: traced program {actual} vs {reference}: {expected}"
        return
    try:
        assert_trees_close(actual, expected)
    except AssertionError as e:
        raise AssertionError(f"{when}: differs from {reference}: {e}") from None


def differs(old: Any, new: Any) -> bool:
    if isinstance(old, Raised) or isinstance(new, Raised):
        return type(old) is not type(new) or old.type is not new.type
    if isinstance(old, Program) or isinstance(new, Program):
        return old != new
    try:
        assert_trees_close(old, new)
    except AssertionError:
        return True
    return False


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One pattern of issue #11's "Why" list.

    setup: notebook-like source run in a fresh namespace; it defines `f` (what is wrapped) and
      `args` (the arguments of the calls before the change, and after it unless the setup or the
      change defines `after_args`).
    change: source run in the namespace, or a function of the namespace; None for patterns where
      only the call context (`before`, `after`) or the arguments differ. A change can register
      undo functions in ``ns["_cleanups"]`` (global state: `sys.modules`, JAX flags).
    kind: "hessian", "grad" or "value", with respect to argument `argnums`.
    reach: True when the pattern is caught by the new capture that `jaxworld._deps.settings.reach`
      switches (arguments, objects, libraries); False for the entry-key, guard and constant fixes.
    before, after: context managers of the calls before / after the change (configuration).
    needs_advance: False where the answer must be right without `jaxworld.advance()` (the entry
      key: configuration, static values), as `jax.jit`'s is.
    new_preparation_sees_old_world: after the change and before an advance, a preparation made
      only now (of the same wrapped function) must still give the old world's answer.
    observe: what is compared (default: the call's outcome).
    eager_hessian_in_default_run: an eager Hessian compiles one executable per derived closure
      (~2 s a row): only the rows that set this run it in the default run, the others under
      ``-m slow`` (eager gradients and values always run).
    jax_keeps_stale_traces: plain JAX itself hands back the old trace after the change (a cache
      keyed on a callable that did not change, such as `jax.checkpoint`'s on its function), so
      the oracle clears JAX's caches (`jax.clear_caches()`), after jaxworld's call: jaxworld
      must be right where plain JAX is stale.
    """

    name: str
    setup: str
    change: str | Callable[[dict], None] | None
    kind: str = "hessian"
    argnums: int = 0
    static_argnums: tuple[int, ...] = ()
    reach: bool = True
    before: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    after: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    needs_advance: bool = True
    new_preparation_sees_old_world: bool = False
    observe: Callable[[Callable, tuple, Pattern], Any] = call
    marks: tuple = ()
    eager_hessian_in_default_run: bool = False
    jax_keeps_stale_traces: bool = False

    def __post_init__(self):
        assert self.kind in KINDS, self.kind

    def __str__(self) -> str:
        return self.name

    def transform(self, fun: Callable) -> Callable:
        if self.kind == "hessian":
            return jax.hessian(fun, argnums=self.argnums)
        if self.kind == "grad":
            return jax.grad(fun, argnums=self.argnums)
        return fun

    def names(self) -> dict:
        """What the setup source sees (a subclass adds libraries)."""
        return {"jax": jax, "jnp": jnp, "np": np, "functools": functools, "types": types,
                "sys": sys, "jaxworld": jaxworld, "X": X, "library_code": library_code,
                "_cleanups": []}

    def namespace(self) -> dict:
        ns = self.names()
        notebook(self.setup, ns)
        return ns

    def wrap(self, ns: dict):
        return jaxworld.wrap(ns["f"], static_argnums=self.static_argnums)

    def fresh(self, ns: dict, *, after_change: bool = False) -> Callable:
        """Plain JAX in the current world: a new function under `jax.jit`, no cache applies
        (after a change, JAX's caches are cleared first where they keep stale traces)."""
        if after_change and self.jax_keeps_stale_traces:
            jax.clear_caches()
        def body(*args):
            return ns["f"](*args)
        return jax.jit(self.transform(body), static_argnums=self.static_argnums)


# -- The three preparations of issue #11 ("What must be shown") ---------------------------------

def prepare_jit_of_jax_transform(p: Pattern, w) -> Callable:
    """`jax.jit(jax.hessian(wrap(f)))` (or `jax.grad`, or the value)."""
    return jax.jit(p.transform(w), static_argnums=p.static_argnums)


def prepare_jaxworld_operator(p: Pattern, w) -> Callable:
    """`jaxworld.hessian(f)` / `jaxworld.grad(f)`; `jaxworld.jit` for values and static args."""
    if p.kind == "value":
        return jaxworld.jit(w, static_argnums=p.static_argnums)
    if p.static_argnums:  # the operators take no static arguments: jit the JAX transform
        return jaxworld.jit(p.transform(w), static_argnums=p.static_argnums)
    return {"hessian": jaxworld.hessian, "grad": jaxworld.grad}[p.kind](w, argnums=p.argnums)


def prepare_eager_jax_transform(p: Pattern, w) -> Callable:
    """Eager `jax.hessian(wrap(f))` (the `world_call` impl rule)."""
    return p.transform(w)


# T is the row's transformation: jax.hessian, jax.grad, or none (a value).
PREPARATIONS = {
    "jax.jit(T(wrap(f)))": prepare_jit_of_jax_transform,
    "jaxworld.T(f)": prepare_jaxworld_operator,
    "eager T(wrap(f))": prepare_eager_jax_transform,
}


def check(p: Pattern, prepare: Callable[[Pattern, Any], Callable]) -> None:
    """Prepare and call before the change; after it (and an advance), equal plain JAX fresh."""
    ns = p.namespace()
    try:
        _check(p, prepare, ns)
    except BaseException as e:
        # A failing row's wrapped functions must die with it: kept alive by the traceback, a
        # record whose guards are wrong (the set row, before the fix) fails every later advance
        # in the session through the suite's guard verifier, i.e. every later test that advances.
        traceback.clear_frames(e.__traceback__)
        gc.collect()
        raise
    finally:
        for undo in reversed(ns["_cleanups"]):
            undo()


def _check(p: Pattern, prepare, ns: dict) -> None:
    w = p.wrap(ns)
    prepared = prepare(p, w)
    args = ns["args"]
    with p.before():
        before = p.observe(prepared, args, p)
        assert_same(before, p.observe(p.fresh(ns), args, p), f"{p}: before the change")
        assert_same(p.observe(prepared, args, p), before, f"{p}: steady state before the change")
    if callable(p.change):
        p.change(ns)
    elif p.change is not None:
        notebook(p.change, ns)
    after_args = ns.get("after_args", args)
    with p.after():
        if p.new_preparation_sees_old_world:
            # No advance yet: the world is the old one, for a computation prepared now as well.
            assert_same(p.observe(prepare(p, w), after_args, p), before,
                        f"{p}: prepared after the change, before an advance",
                        reference="the old world's answer (no advance yet)")
        if p.jax_keeps_stale_traces:
            # The oracle clears JAX's caches, for jaxworld as well: jaxworld's answer first.
            jaxworld.advance()
            got = p.observe(prepared, after_args, p)
            expected = p.observe(p.fresh(ns, after_change=True), after_args, p)
        else:
            expected = p.observe(p.fresh(ns), after_args, p)
        assert differs(before, expected), (
            f"{p}: the change must change plain JAX's answer (a stale answer could pass): "
            f"{before!r:.200} vs {expected!r:.200}")
        if not p.jax_keeps_stale_traces:
            if not p.needs_advance:
                assert_same(p.observe(prepared, after_args, p), expected,
                            f"{p}: after the change, without an advance (as jax.jit)")
            jaxworld.advance()
            got = p.observe(prepared, after_args, p)
        assert_same(got, expected, f"{p}: after the advance")
        assert_same(p.observe(prepared, after_args, p), expected, f"{p}: and it stays there")
    if p.before is not contextlib.nullcontext or p.after is not contextlib.nullcontext:
        with p.before():  # back in the first configuration: its own answer again
            assert_same(p.observe(prepared, args, p), p.observe(p.fresh(ns), args, p),
                        f"{p}: back in the configuration of the first calls")


def _marks(p: Pattern, prepare) -> tuple:
    if (prepare is prepare_eager_jax_transform and p.kind == "hessian"
            and not p.eager_hessian_in_default_run):
        return (*p.marks, pytest.mark.slow)  # keeps the default run under a minute
    return p.marks


def parametrize(patterns, preparations=PREPARATIONS):
    """`pytest.mark.parametrize("pattern,prepare", ...)` over patterns x preparations."""
    params = [pytest.param(p, prep, id=f"{p.name}-{label}", marks=_marks(p, prep))
              for p in patterns for label, prep in preparations.items()]
    return pytest.mark.parametrize("pattern,prepare", params)


def assert_stale_without_reach(p: Pattern, prepare, monkeypatch) -> None:
    """The meta-test: with the new capture of issue #11 switched off
    (`jaxworld._deps.settings.reach`), the pattern's check fails."""
    monkeypatch.setattr(jaxworld._deps.settings, "reach", False)
    try:
        with pytest.raises(AssertionError):
            check(p, prepare)
    finally:
        # The records captured with the switch off must not outlive it: checked by a later
        # advance with the switch on, a walk would reach more than their guards did, and the
        # suite's guard verifier would fail that advance (in whichever test made it).
        gc.collect()


def prepare_plain_jax_traced_fresh(p: Pattern, w) -> Callable:
    """Not jaxworld: plain JAX traced fresh at every call (the oracle as a preparation). Checks
    of the harness use it: a correct implementation must pass `check`."""
    fun = w.__wrapped__

    def run(*args):
        return p.fresh({"f": fun})(*args)
    return run


def assert_noop_advances_change_nothing(ns, w, H, P, E, outer_traces) -> None:
    """H, P (a jax.jit counting its traces in `outer_traces`) and E, prepared on wrapped `w`,
    equal plain JAX traced fresh, and three no-op advances re-trace, re-compile and re-derive
    nothing."""
    x = jnp.asarray(X)
    expected = jax.jit(jax.hessian(lambda y: ns["f"](y)))(x)
    for prepared in (H, P, E):
        assert_trees_close(prepared(x), expected)
    compiled = P._cache_size()
    jaxworld.reset_stats()
    for _ in range(3):
        jaxworld.advance()
        for prepared in (H, P, E):
            assert_trees_close(prepared(x), expected)
    stats = jaxworld.stats()
    assert stats["traces"] == 0, stats
    assert stats["compilations"] == 0, stats
    assert stats["derivations"] == 0, stats
    assert jaxworld.stats(w)["restamps"] >= 1  # the record was checked and held
    assert len(outer_traces) == 1  # jax.jit did not re-trace...
    assert P._cache_size() == compiled  # ...nor compile again
