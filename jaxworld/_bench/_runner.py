"""The runner of `jaxworld bench`: the table of measurement groups, `run`, the command line.

A group is one module of this package with `PER_FUNCTION` and `steps(cfg, ...)`, which yields
``(label, benchmark, arguments)``; each benchmark returns a list of `Row`. Groups with
``PER_FUNCTION = True`` take ``steps(cfg, name, n)`` and run inside the loop over the functions and
sizes (the order of the rows in docs/bench.md); the others take ``steps(cfg)`` and run after it,
in the order of `GROUPS`. Adding a group is one module plus one entry in `GROUPS`
(CONTRIBUTING.md, "Adding a benchmark group").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from types import ModuleType

from . import (
    _advance,
    _capture,
    _eager,
    _first,
    _memory,
    _numpy_data,
    _scoped,
    _steady,
    _trace,
)
from ._common import FUNCTIONS, Config, Row, _perf
from ._report import format_markdown, format_table, machine, plot, to_json


@dataclasses.dataclass(frozen=True)
class Group:
    """A measurement group: its module (`PER_FUNCTION`, `steps`) and what it measures."""

    module: ModuleType
    what: str


# `--only` names, in the order the groups run (the numbers are those of the package docstring).
GROUPS: dict[str, Group] = {
    "steady": Group(_steady, "1, 5, 8: steady state, FLOPs, re-jit every call"),
    "first": Group(_first, "2: first call"),
    "advance": Group(_advance, "3, 4: no-op and relevant advance"),
    "trace": Group(_trace, "6: trace of 20 call sites"),
    "memory": Group(_memory, "7: memory over cycles"),
    "capture": Group(_capture, "9, 10: trace with dependency record, realistic globals"),
    "eager": Group(_eager, "11: eager dispatch, 1/20/200 leaves"),
    "numpy": Group(_numpy_data, "12: no-op advance against NumPy data read, 1 MB / 100 MB / 1 GB"),
    "scoped": Group(_scoped, "13, 14, 15: blast radius, drop-in relevant change and memory"),
}


def run(cfg: Config, *, log: Callable[[str], None] = lambda s: None) -> list[Row]:
    """Run every benchmark of the selected groups (`cfg.only`, default all) under `cfg`.

    `log` receives one progress line per step.
    """
    rows: list[Row] = []

    def step(label, benchmark, args):
        t = _perf()
        rows.extend(benchmark(*args))
        log(f"  {label} ({_perf() - t:.1f} s)")

    selected = [group for name, group in GROUPS.items() if not cfg.only or name in cfg.only]
    per_function = [g for g in selected if g.module.PER_FUNCTION]
    for name in FUNCTIONS:
        for n in cfg.sizes:
            for group in per_function:
                for label, benchmark, args in group.module.steps(cfg, name, n):
                    step(label, benchmark, args)
    for group in selected:
        if not group.module.PER_FUNCTION:
            for label, benchmark, args in group.module.steps(cfg):
                step(label, benchmark, args)
    return rows


# -- command line -------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="n = 3 and 64, few repetitions, 20 memory cycles "
                             "(well under a minute)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as Markdown")
    parser.add_argument("--plot", metavar="PATH", help="plot overhead vs input size (matplotlib)")
    parser.add_argument("--sizes", metavar="N", type=int, nargs="+",
                        help="input sizes (default 3 64 512; --quick: 3 64)")
    parser.add_argument("--cycles", type=int, help="redefine-advance-call cycles for memory")
    parser.add_argument("--repeats", type=int, help="A/B repetitions of each timed benchmark")
    parser.add_argument("--only", nargs="+", choices=tuple(GROUPS),
                        help="run only these groups: " + ", ".join(
                            f"{name} ({group.what})" for name, group in GROUPS.items()))


def _command(args: argparse.Namespace) -> str:
    parts = ["jaxworld bench"]
    if args.quick:
        parts.append("--quick")
    if args.sizes:
        parts.append("--sizes " + " ".join(map(str, args.sizes)))
    if getattr(args, "only", None):
        parts.append("--only " + " ".join(args.only))
    for option in ("cycles", "repeats", "json", "markdown", "plot"):
        value = getattr(args, option)
        if value is not None:
            parts.append(f"--{option} {value}")
    return " ".join(parts)


def main(args: argparse.Namespace) -> int:
    """Run the benchmarks and write the requested outputs; returns an exit status."""
    cfg = Config.make(args.quick, args.sizes, args.cycles, args.repeats)
    cfg.only = tuple(getattr(args, "only", None) or ())
    command = _command(args)
    load_start = _load()
    print(f"jaxworld bench: sizes {list(cfg.sizes)}, {cfg.steady_reps} steady repetitions, "
          f"{cfg.cycles} memory cycles", flush=True)
    t = _perf()
    rows = run(cfg, log=lambda s: print(s, flush=True))
    meta = {
        "command": command,
        "quick": bool(args.quick),
        "config": dataclasses.asdict(cfg),
        "machine": machine(),
        "load_average_start": load_start,
        "load_average_end": _load(),
        "seconds": _perf() - t,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "ratio": "jaxworld / baseline; timed rows: median over interleaved A/B repetitions of "
                 "the per-repetition ratio",
    }
    print()
    print(format_table(rows))
    missed = [r for r in rows if r.met is False]
    print(f"\n{sum(r.met is True for r in rows)} targets met, {len(missed)} missed "
          f"({meta['seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(to_json(rows, meta), fh, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(format_markdown(rows, meta))
    if args.plot:
        plot(rows, args.plot, meta)
    return 0


def _load():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None

