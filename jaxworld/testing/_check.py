"""`check(scenarios) -> Report`: run each case, compare with each reference, never crash the run.

A case that raises becomes an ``"error"`` row with its exception shown; the run goes on.
"""

from __future__ import annotations

import contextlib
import re
import time
import traceback
from collections.abc import Callable
from typing import Any

import jax
from jax import tree_util

import jaxworld

from .. import _epoch, _stats
from ._references import (
    bind_static,
    build_jaxworld,
    compare,
    default_prepare_args,
    default_tangent,
    fd_applicable,
    finite_differences,
    identical,
    plain_jax,
    prepare,
    scenario_analytic,
    scenario_fd_applicable,
    scenario_finite_differences,
    scenario_plain_jax,
    split_static,
)
from ._report import ERROR, FAIL, PASS, Report, Row
from ._scenario import Scenario, WorldScenario, as_scenario_list
from ._stability import Counters, Snapshot, check_mismatch, dtype_mismatches
from ._world import World


def check(scenarios: Any, *, pattern: str | None = None,
          on_start: Callable[[Any, int, int], None] | None = None,
          on_row: Callable[[Row, int, int], None] | None = None,
          suite: str = "") -> Report:
    """Run scenarios and compare every result with every reference that applies.

    Args:
      scenarios: a `Scenario`, a `WorldScenario`, a list of them, or a zero-argument callable
        returning such a list.
      pattern: keep only cases matching this ``-k`` expression (see `matches`).
      on_start, on_row: progress callbacks ``(case, index, total)`` / ``(row, index, total)``.
      suite: a label recorded in the report.

    Returns:
      A `Report`: ``report.ok``, ``report.failures``, ``report.rows`` (name, operator, status,
      max abs/rel error against each reference, time).

    Raises:
      TypeError: `scenarios` is not a list of `Scenario` / `WorldScenario`.
      ValueError: `pattern` is not a valid ``-k`` expression.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, check
      >>> report = check([Scenario(lambda x: jnp.sum(x ** 3), (jnp.ones(2),), "hvp")])
      >>> report.ok, report.rows[0].comparisons["fd"].ok
      (True, True)
    """
    cases = select(as_scenario_list(scenarios, "jaxworld.testing.check"), pattern)
    start = time.perf_counter()
    rows = []
    for i, case in enumerate(cases):
        if on_start is not None:
            on_start(case, i, len(cases))
        row = run_case(case)
        rows.append(row)
        if on_row is not None:
            on_row(row, i, len(cases))
    return Report(rows, suite=suite, time=time.perf_counter() - start)


def select(cases: list, pattern: str | None) -> list:
    """The cases whose name, operator or tags match the ``-k`` expression `pattern`."""
    if not pattern:
        return list(cases)
    return [c for c in cases if matches(pattern, f"{c.name} {c.operator} {' '.join(c.tags)}")]


_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def matches(pattern: str, text: str) -> bool:
    """pytest-style ``-k``: case-insensitive substrings combined with and / or / not / ( ).

    Adjacent words form one phrase (``-k "sin_sq: grad"``).

    Raises:
      ValueError: `pattern` is not a valid ``-k`` expression (incomplete, unbalanced parentheses).

    Example:
      >>> matches("world and not reload", "world: global float rebound")
      True
    """
    tokens = _TOKEN.findall(pattern)
    text = text.lower()
    pos = 0

    def expr():
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos].lower() == "or":
            pos += 1
            value = term() or value
        return value

    def term():
        nonlocal pos
        value = factor()
        while pos < len(tokens) and tokens[pos].lower() == "and":
            pos += 1
            value = factor() and value
        return value

    def factor():
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"jaxworld check -k: incomplete expression {pattern!r}.")
        tok = tokens[pos]
        pos += 1
        if tok.lower() == "not":
            return not factor()
        if tok == "(":
            value = expr()
            if pos >= len(tokens) or tokens[pos] != ")":
                raise ValueError(f"jaxworld check -k: unbalanced parentheses in {pattern!r}.")
            pos += 1
            return value
        # Adjacent words form one phrase: -k "sin_sq: grad" matches that name.
        words = [tok]
        while pos < len(tokens) and tokens[pos] not in "()" and tokens[pos].lower() not in (
                "and", "or", "not"):
            words.append(tokens[pos])
            pos += 1
        return " ".join(words).lower() in text

    result = expr()
    if pos != len(tokens):
        raise ValueError(f"jaxworld check -k: cannot parse {pattern!r} near {tokens[pos]!r}.")
    return result


def run_case(case: Scenario | WorldScenario) -> Row:
    """Run one case; every exception becomes an ``"error"`` row."""
    row = Row(case.name, case.operator, case.kind, tags=case.tags,
              description=case.description)
    start = time.perf_counter()
    try:
        x64 = getattr(case, "x64", None)
        with jax.enable_x64(x64) if x64 is not None else contextlib.nullcontext():
            if isinstance(case, WorldScenario):
                _run_world(case, row)
            else:
                _run_scenario(case, row)
    except Exception as e:  # a case that raises is a failure of that case, not of the run
        row.status = ERROR
        row.message = _describe_exception(e)
    row.time = time.perf_counter() - start
    return row


def _describe_exception(e: BaseException) -> str:
    """``Type: message`` and the innermost frame, so a row shows what raised and where."""
    text = f"{type(e).__name__}: {e}".strip()
    lines = text.splitlines()
    if len(lines) > 12:
        text = "\n".join(lines[:12] + ["..."])
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        last = frames[-1]
        text += f"\n  (raised at {last.filename}:{last.lineno} in {last.name})"
    return text


def _ready(tree: Any) -> Any:
    return jax.block_until_ready(tree)


def _timed(fn, *a):
    start = time.perf_counter()
    out = _ready(fn(*a))
    return out, time.perf_counter() - start


def _verdict(row: Row) -> None:
    failed = [c for c in row.comparisons.values() if not c.ok]
    if failed and row.status == PASS:
        row.status = FAIL
        row.message = "; ".join(
            f"{_title(c.reference)}: {c.note}" if c.note else
            f"{_title(c.reference)}: max abs error {c.max_abs:.2e} (rel {c.max_rel:.2e}) "
            f"exceeds tolerance (rtol {c.rtol:.1e}, atol {c.atol:.1e})" for c in failed)


def _title(ref: str) -> str:
    titles = {"jax": "plain JAX (traced fresh)", "fd": "finite differences (float64)",
              "analytic": "analytic reference", "jax@old": "plain JAX before the change"}
    return titles.get(ref, ref)


def _fail(row: Row, message: str) -> None:
    if row.status == PASS:
        row.status, row.message = FAIL, message
    else:
        row.message += f"; {message}"


def _stability(row: Row, name: str, problems: list[str]) -> None:
    """Record one stability check; each problem fails the row."""
    row.stability[name] = "ok" if not problems else "; ".join(problems)
    for problem in problems:
        _fail(row, problem)


def _steady(row: Row, counters: Counters, what: str) -> None:
    row.steady_traces, row.steady_compiles = counters.traces, counters.compiles
    problems = []
    if counters.traces or counters.compiles:
        problems.append(
            f"{what} re-traced or re-compiled: {counters.describe()} (expected none: the "
            "operator's cache should answer. A JAX cache key that changes between calls causes "
            "this: a configuration flag or user context set while the function runs, a static "
            "value whose hash changes)")
    _stability(row, "steady", problems)


def _run_scenario(s: Scenario, row: Row) -> None:
    args = s.args
    prepare_at = s.prepare_args if s.prepare_args is not None else default_prepare_args(
        args, s.static_argnums)

    if s.expect_error is not None:
        _run_expected_error(s, row, prepare_at)
        return

    snapshot = Snapshot(args)
    # Settle the world first: a change an earlier case left without an advance would otherwise be
    # found (and advanced past) by this case's first trace, inside the operator's first call, and
    # its steady-state call would re-trace once (issue #12's implicit advance).
    _epoch.sync()
    prepared = prepare(s, args)
    _, row.prepare_time = _timed(prepared, *prepare_at)
    with Counters() as steady:
        first = _ready(prepared(*args))
        second, row.eval_time = _timed(prepared, *args)
    _stability(row, "intact", snapshot.changes(args))
    _steady(row, steady, "steady-state calls of the prepared operator (same signature)")
    if not identical(first, second):
        _fail(row, "two calls of the prepared operator at the same point gave different results")
    plain, plain_element = scenario_plain_jax(s, args)
    row.comparisons["jax"] = compare(first, plain, "jax", rtol=s.rtol, atol=s.atol,
                                     check_dtype=not s.batched)
    _stability(row, "dtypes", [
        f"result dtype differs from plain JAX's at {m}" for m in dtype_mismatches(
            tree_util.tree_map(lambda x: x[0], first) if s.batched else first,
            plain_element)])
    _stability(row, "mismatch", check_mismatch(prepared, args))
    why_not = scenario_fd_applicable(s)
    if why_not is None:
        row.comparisons["fd"] = compare(first, scenario_finite_differences(s), "fd",
                                        rtol=s.rtol, atol=s.atol, check_dtype=False)
    else:
        row.not_applicable["fd"] = why_not
    if s.reference is not None:
        row.comparisons["analytic"] = compare(first, scenario_analytic(s), "analytic",
                                              rtol=s.rtol, atol=s.atol, check_dtype=False)
    else:
        row.not_applicable["analytic"] = "no analytic reference given"
    _verdict(row)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _run_expected_error(s: Scenario, row: Row, prepare_at: tuple) -> None:
    """Plain JAX must raise `s.expect_error`; jaxworld must raise the same error."""
    want = s.expect_error
    try:
        scenario_plain_jax(s)
    except want as e:
        plain_error = e
    else:
        _fail(row, f"plain JAX did not raise {want.__name__}: the scenario's expect_error is "
                   "wrong (remove it, or fix the function)")
        return
    try:
        prepared = prepare(s)
        prepared(*prepare_at)
        prepared(*s.args)
    except Exception as e:
        if type(e) is not type(plain_error) or _first_line(e) != _first_line(plain_error):
            _fail(row, f"plain JAX raised {type(plain_error).__name__}: "
                       f"{_first_line(plain_error)!r}, jaxworld raised {type(e).__name__}: "
                       f"{_first_line(e)!r}")
            return
        row.message = (f"raised {type(e).__name__} like plain JAX (expected: JAX cannot do "
                       f"this): {_first_line(e)}")
        return
    _fail(row, f"plain JAX raises {type(plain_error).__name__} "
               f"({_first_line(plain_error)!r}) but jaxworld returned a result")


def _run_world(s: WorldScenario, row: Row) -> None:
    try:
        with World(s.name.replace(" ", "_")) as world:
            _run_world_in(s, row, world)
    finally:
        if s.undo is not None:
            s.undo()
            # What the undo put back is another change: a new world, so nothing prepared later
            # in this process sees the mutated one.
            jaxworld.advance()


def _run_world_in(s: WorldScenario, row: Row, world: World) -> None:
    spec = s.spec
    args = s.args
    static = s.static_argnums
    for name, source in s.modules.items():
        world.module(name, source)
    if isinstance(s.setup, str):
        world.define(s.setup)
    else:
        s.setup(world)
    fun = world[s.fun]
    dyn, _ = split_static(args, static)
    v = (default_tangent(spec, bind_static(fun, args, static), dyn)
         if spec.family == "hvp" else None)
    kw = dict(static_argnums=static, holomorphic=s.holomorphic, v=v)
    snapshot = Snapshot(args)
    call, owner = build_jaxworld(fun, spec, args, via=s.via, **kw)
    prepare_at = (s.prepare_args if s.prepare_args is not None
                  else default_prepare_args(args, static))
    _, row.prepare_time = _timed(call, prepare_at)
    old = _ready(call(args))
    plain_old = plain_jax(world[s.fun], spec, args, **kw)
    row.comparisons["jax@old"] = compare(old, plain_old, "jax", rtol=s.rtol, atol=s.atol)
    row.comparisons["jax@old"].reference = "jax@old"
    traces_before = _stats.stats(owner)["traces"]

    if isinstance(s.change, str):
        world.define(s.change)
    else:
        s.change(world)
    world.advance()

    new = _ready(call(args))
    with Counters() as steady:
        again, row.eval_time = _timed(call, args)
    row.retraces = _stats.stats(owner)["traces"] - traces_before
    _stability(row, "intact", snapshot.changes(args))
    _steady(row, steady, "the call after the first one in the new world")
    if not identical(new, again):
        _fail(row, "two calls after the change gave different results")
    plain_new = plain_jax(world[s.fun], spec, args, **kw)
    row.comparisons["jax"] = compare(new, plain_new, "jax", rtol=s.rtol, atol=s.atol)
    _stability(row, "dtypes", [f"result dtype differs from plain JAX's at {m}"
                               for m in dtype_mismatches(new, plain_new)])
    why_not = fd_applicable(spec, args, s.holomorphic)
    if why_not is None:
        fd = finite_differences(world[s.fun], spec, args, **kw)
        row.comparisons["fd"] = compare(new, fd, "fd", rtol=s.rtol, atol=s.atol,
                                        check_dtype=False)
    else:
        row.not_applicable["fd"] = why_not
    row.not_applicable["analytic"] = "world scenarios compare with the new world's plain JAX"
    _verdict(row)
    unchanged = compare(plain_new, plain_old, "jax").ok
    if s.expect in ("new_world", "follows"):
        if unchanged and s.expect == "new_world":
            _fail(row, "the change did not change plain JAX's answer, so this case cannot "
                       "tell a stale trace from a fresh one; make the change matter")
        if row.retraces < 1:
            _fail(row, "the operator did not re-trace after a relevant change "
                       f"(jaxworld.stats traces grew by {row.retraces})")
    else:
        if row.retraces != 0:
            _fail(row, f"expected no re-trace, but jaxworld.stats(op)['traces'] grew by "
                       f"{row.retraces}")
        if not identical(new, old):
            _fail(row, "the answer changed although nothing it depends on did")
    if row.status == PASS:
        row.message = f"re-traced {row.retraces} time(s) after advance()"
        if unchanged and s.expect == "follows":
            row.message += " (the change does not alter this operator's answer)"
    elif s.expect == "follows":
        row.message = f"jaxworld did not follow {s.description}: {row.message}"
