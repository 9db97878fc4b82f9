"""`jaxworld check --benchmark`: each case side by side with plain JAX (issue #15, item 5).

For every `Scenario` (world cases and cases expecting a JAX error are left out), four figures
for jaxworld's prepared operator and for plain JAX's own jitted computation on a fresh copy of
the function:

- first call: building the operator and calling it once (tracing and compiling included), on a
  fresh copy of the function each time so that no cache answers;
- steady call: a call with the same signature afterwards;
- compile: seconds XLA spent compiling during the first call (``jax.monitoring`` events);
- traces: jaxprs traced during the first call (JAX's and jaxworld's).

The two sides are measured alternately (jaxworld, plain, jaxworld, plain, ...) and each figure is
the median of its runs, so that a slow moment of the machine falls on both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax

from ._references import (
    _jax_computation,
    bind_static,
    prepare,
    scenario_tangent,
    unbatched,
)
from ._scenario import Scenario
from ._stability import Counters
from ._world import fresh_function


@dataclasses.dataclass
class Side:
    """Medians for one side (jaxworld or plain JAX)."""

    first_call: float  # seconds
    steady_call: float  # seconds
    compile: float  # seconds of XLA compilation during the first call
    traces: int  # jaxprs traced during the first call

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BenchmarkRow:
    name: str
    operator: str
    jaxworld: Side | None = None
    plain: Side | None = None
    note: str = ""  # why a case was not measured

    def as_dict(self) -> dict:
        return {"name": self.name, "operator": self.operator, "note": self.note,
                "jaxworld": self.jaxworld.as_dict() if self.jaxworld else None,
                "plain": self.plain.as_dict() if self.plain else None}


def _plain_operator(s: Scenario) -> Callable[..., Any]:
    """Plain JAX's jitted computation of a fresh copy of `s.fun` (vmapped when batched)."""
    point = unbatched(s.args, 0) if s.batched else s.args
    f = bind_static(fresh_function(s.fun), point, s.static_argnums)
    computation = _jax_computation(f, s.spec, s.holomorphic, scenario_tangent(s))
    if s.batched:
        n_dyn = len(s.args) - len(s.static_argnums)
        computation = jax.vmap(computation, in_axes=(0,) + (None,) * (n_dyn - 1))
    jitted = jax.jit(computation)
    static = s.static_argnums
    return lambda *args: jitted(*(x for i, x in enumerate(args) if i not in static))


def _jaxworld_operator(s: Scenario) -> Callable[..., Any]:
    # The operator without the preparation's signature check, which costs as much as a small
    # jitted call: the figures are jaxworld's, not the harness's.
    return prepare(s.replace(fun=fresh_function(s.fun))).unchecked


def _first(build: Callable[[], Callable[..., Any]], args: tuple):
    with Counters() as counters:
        start = time.perf_counter()
        op = build()
        jax.block_until_ready(op(*args))
        elapsed = time.perf_counter() - start
    return op, elapsed, counters


def benchmark_case(s: Scenario, *, repeats: int = 3, calls: int = 25) -> BenchmarkRow:
    """Measure one scenario, jaxworld and plain JAX alternately; medians of the runs."""
    row = BenchmarkRow(s.name, s.operator)
    if not isinstance(s, Scenario):
        row.note = "world-change case (not benchmarked)"
        return row
    if s.expect_error is not None:
        row.note = "plain JAX cannot do this operator (not benchmarked)"
        return row
    x64 = contextlib.nullcontext() if s.x64 is None else jax.enable_x64(s.x64)
    with x64:
        args = s.args
        sides: dict[str, dict[str, list]] = {k: {"first": [], "compile": [], "traces": [],
                                                 "steady": []} for k in ("jaxworld", "plain")}
        builders = {"jaxworld": lambda: _jaxworld_operator(s), "plain": lambda: _plain_operator(s)}
        ops = {}
        for _ in range(repeats):
            for side, build in builders.items():
                op, elapsed, counters = _first(build, args)
                ops[side] = op
                sides[side]["first"].append(elapsed)
                sides[side]["compile"].append(counters.compile_seconds)
                sides[side]["traces"].append(counters.traces)
        for op in ops.values():  # warm both once more before timing steady calls
            jax.block_until_ready(op(*args))
        for _ in range(calls):
            for side, op in ops.items():
                start = time.perf_counter()
                jax.block_until_ready(op(*args))
                sides[side]["steady"].append(time.perf_counter() - start)
    for side, figures in sides.items():
        setattr(row, side, Side(
            first_call=statistics.median(figures["first"]),
            steady_call=statistics.median(figures["steady"]),
            compile=statistics.median(figures["compile"]),
            traces=int(statistics.median(figures["traces"]))))
    return row


@dataclasses.dataclass
class BenchmarkReport:
    rows: list[BenchmarkRow]
    repeats: int
    calls: int
    time: float = 0.0

    def table(self) -> str:
        """A fixed-width table; each figure as ``jaxworld / plain JAX``."""
        headers = ["case", "operator", "first call ms", "steady call us", "steady x",
                   "compile ms", "traces"]
        lines = []
        for r in self.rows:
            if r.jaxworld is None:
                lines.append([r.name, r.operator, r.note, "", "", "", ""])
                continue
            jw, pl = r.jaxworld, r.plain
            lines.append([
                r.name, r.operator,
                f"{jw.first_call * 1e3:.0f} / {pl.first_call * 1e3:.0f}",
                f"{jw.steady_call * 1e6:.0f} / {pl.steady_call * 1e6:.0f}",
                f"{jw.steady_call / pl.steady_call:.2f}",
                f"{jw.compile * 1e3:.0f} / {pl.compile * 1e3:.0f}",
                f"{jw.traces} / {pl.traces}"])
        widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines, strict=True)]
        widths[0] = min(widths[0], 60)

        def fmt(cells):
            return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths,
                                                                 strict=True)).rstrip()

        out = [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(c) for c in lines)]
        out.append("")
        out.append(self.summary())
        return "\n".join(out)

    def summary(self) -> str:
        measured = [r for r in self.rows if r.jaxworld is not None]
        if not measured:
            return "no case measured"
        ratios = sorted(r.jaxworld.steady_call / r.plain.steady_call for r in measured)
        first = sorted(r.jaxworld.first_call / r.plain.first_call for r in measured)
        return (f"{len(measured)} cases measured (jaxworld / plain JAX, medians of "
                f"{self.repeats} first calls and {self.calls} steady calls, interleaved): "
                f"steady call ratio median {statistics.median(ratios):.2f} "
                f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}); first call ratio median "
                f"{statistics.median(first):.2f} (range {first[0]:.2f}-{first[-1]:.2f}); "
                f"{self.time:.0f}s")

    def markdown(self) -> str:
        out = ["| case | operator | first call ms (jaxworld / plain) | steady call us | "
               "steady ratio | compile ms | traces |",
               "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            if r.jaxworld is None:
                out.append(f"| {_md(r.name)} | {r.operator} | {r.note} | | | | |")
                continue
            jw, pl = r.jaxworld, r.plain
            out.append(
                f"| {_md(r.name)} | {r.operator} | {jw.first_call * 1e3:.0f} / "
                f"{pl.first_call * 1e3:.0f} | {jw.steady_call * 1e6:.0f} / "
                f"{pl.steady_call * 1e6:.0f} | {jw.steady_call / pl.steady_call:.2f} | "
                f"{jw.compile * 1e3:.0f} / {pl.compile * 1e3:.0f} | {jw.traces} / {pl.traces} |")
        return "\n".join(out) + f"\n\n{self.summary()}\n"

    def to_json(self) -> dict:
        return {"format": "jaxworld-check-benchmark/1", "repeats": self.repeats,
                "calls": self.calls, "time": self.time,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "jax": jax.__version__,
                "python": platform.python_version(), "units": "seconds",
                "rows": [r.as_dict() for r in self.rows]}

    def write_json(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_json(), fh, indent=1)
            fh.write("\n")


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def benchmark(scenarios: list, *, repeats: int = 3, calls: int = 25,
              on_row: Callable[[BenchmarkRow, int, int], None] | None = None) -> BenchmarkReport:
    """Benchmark every scenario side by side with plain JAX.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, benchmark
      >>> report = benchmark([Scenario(lambda x: jnp.sum(x ** 3), (jnp.ones(3),), "hessian")],
      ...                    repeats=1, calls=3)
      >>> report.rows[0].jaxworld.traces >= 1, report.rows[0].plain.traces >= 1
      (True, True)
    """
    start = time.perf_counter()
    rows = []
    for i, s in enumerate(scenarios):
        row = benchmark_case(s, repeats=repeats, calls=calls)
        rows.append(row)
        if on_row is not None:
            on_row(row, i, len(scenarios))
    return BenchmarkReport(rows, repeats, calls, time.perf_counter() - start)
