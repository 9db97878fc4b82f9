"""`jaxworld check`: run a suite of scenarios, print a table, write JUnit/JSON, exit 1 on failure.

`jaxworld/_cli.py` owns the top-level parser; it calls `add_arguments` for the ``check``
subcommand and dispatches to `run`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import TextIO

DESCRIPTION = """\
Run nested-AD regression scenarios: each prepared jaxworld operator is compared with plain JAX
traced fresh, with float64 finite differences and with analytic references; world-change
scenarios change the code, advance the epoch and expect the new world's answer. Every case also
checks that steady-state calls neither re-trace nor re-compile, that result dtypes and weak types
equal plain JAX's, that the inputs are intact, and that a preparation refuses another function or
signature. --mutate checks that prepared operators follow a change of each dependency of the
suite's functions; --benchmark times each case side by side with plain JAX."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite", default="builtin",
        help="'builtin' (default) or MODULE:ATTR naming a list of scenarios or a zero-argument "
             "callable returning one (e.g. tests.my_scenarios:SCENARIOS)")
    parser.add_argument("-k", dest="pattern", metavar="PATTERN", default=None,
                        help="only cases whose name, operator or tags match (substrings with "
                             "and / or / not, like pytest -k)")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("--junit", metavar="PATH", help="write a JUnit XML report")
    parser.add_argument("--json", metavar="PATH", help="write every row (errors, timings) as JSON")
    parser.add_argument("--baseline", metavar="PATH",
                        help="an earlier --json report: flag cases slower than it")
    parser.add_argument("--baseline-tolerance", type=float, default=2.0, metavar="FACTOR",
                        help="flag a case when its time exceeds FACTOR x its baseline time "
                             "(default 2.0)")
    parser.add_argument("--baseline-min-seconds", type=float, default=0.05, metavar="SECONDS",
                        help="never flag cases faster than this (timer noise; default 0.05)")
    parser.add_argument("--fail-on-slower", action="store_true",
                        help="exit 1 when a case is flagged slower than the baseline")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar or per-case lines (the table is still printed)")
    parser.add_argument("--markdown", metavar="PATH",
                        help="write a Markdown summary (e.g. --markdown \"$GITHUB_STEP_SUMMARY\")")
    parser.add_argument("--mutate", action="store_true",
                        help="staleness mutation testing: instead of the selected cases, run one "
                             "world case per user-level dependency of their functions (a helper "
                             "scaled, a float nudged, an array edited, a method replaced); each "
                             "expects the prepared operator to follow the change")
    parser.add_argument("--benchmark", action="store_true",
                        help="time each selected case side by side with plain JAX (first call, "
                             "steady call, compile time, traces; medians of interleaved runs) "
                             "instead of checking it")
    parser.add_argument("--benchmark-json", metavar="PATH", default="jaxworld-benchmark.json",
                        help="where --benchmark writes its JSON (default jaxworld-benchmark.json)")
    parser.add_argument("--repeats", type=int, default=3, metavar="N",
                        help="--benchmark: first calls per side (default 3)")
    parser.add_argument("--calls", type=int, default=25, metavar="N",
                        help="--benchmark: steady calls per side (default 25)")


def load_suite(spec: str) -> list:
    """The scenarios named by ``--suite``: ``"builtin"`` or ``"module:attr"``."""
    from ._builtin import builtin_suite
    from ._scenario import as_scenario_list

    if spec == "builtin":
        return builtin_suite()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(
            f"jaxworld check: --suite must be 'builtin' or MODULE:ATTR (for example "
            f"tests.my_scenarios:SCENARIOS), got {spec!r}.")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, so a suite in the project is found
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SystemExit(
            f"jaxworld check: cannot import suite module {module_name!r}: {e}") from None
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise SystemExit(
            f"jaxworld check: module {module_name!r} has no attribute {attr!r} (expected a list "
            "of jaxworld.testing.Scenario or a zero-argument callable returning one).") from None
    try:
        return as_scenario_list(value, f"jaxworld check --suite {spec}")
    except TypeError as e:
        raise SystemExit(str(e)) from None


class _Progress:
    """A tqdm bar on a terminal (when tqdm is installed); plain lines otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool):
        self.stream = stream
        self.enabled = enabled
        self.bar = None
        if enabled and total and _isatty(stream):
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, file=stream, unit="case", leave=False,
                                dynamic_ncols=True)

    def start(self, case, index: int, total: int) -> None:
        if self.bar is not None:
            self.bar.set_description_str(case.name[:40])

    def done(self, row, index: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if not row.ok:
                self.bar.write(f"{row.status.upper()} {row.name}: {row.message.splitlines()[0]}")
        elif self.enabled:
            width = len(str(total))
            print(f"[{index + 1:>{width}}/{total}] {row.status.upper():5} {row.name} "
                  f"({row.time:.2f}s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Run ``jaxworld check`` with parsed `args`; returns the exit status."""
    from ._check import check, select

    out = sys.stdout if stream is None else stream
    cases = load_suite(args.suite)
    try:
        selected = select(cases, args.pattern)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if args.mutate and args.benchmark:
        raise SystemExit("jaxworld check: --mutate and --benchmark are separate runs; pass one.")
    if args.mutate:
        from ._mutants import mutants_of

        # The sites are read now, before any case runs (see `mutants`).
        derived = mutants_of(selected)
        print(f"--mutate: {len(derived)} mutants of the dependencies of "
              f"{len({id(c.fun) for c in selected if hasattr(c, 'fun')})} functions "
              f"({len(derived.skipped)} dependencies not mutated)", file=out)
        for skipped in derived.skipped:
            print(f"  not mutated: {skipped.reason}", file=out)
        cases, selected = derived, list(derived)
    if args.benchmark and not args.list:
        return _run_benchmark(args, selected, out)
    if args.list:
        for case in selected:
            print(f"{case.name}  [{case.operator}]", file=out)
        print(f"{len(selected)} of {len(cases)} cases selected", file=out)
        return 0
    if not selected:
        print(f"jaxworld check: no case of suite {args.suite!r} matches -k {args.pattern!r}.",
              file=out)
        return 1
    baseline = None
    if args.baseline:
        try:
            with open(args.baseline) as fh:
                baseline = json.load(fh)
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(
                f"jaxworld check: cannot read --baseline {args.baseline!r}: {e}") from None

    progress = _Progress(len(selected), out, enabled=not args.no_progress)
    try:
        report = check(selected, on_start=progress.start, on_row=progress.done, suite=args.suite)
    finally:
        progress.close()
    slower = []
    if baseline is not None:
        try:
            slower = report.compare_baseline(baseline, args.baseline_tolerance,
                                             args.baseline_min_seconds)
        except ValueError as e:
            raise SystemExit(str(e)) from None
    print(report.table(), file=out)
    if args.markdown:
        report.write_markdown(args.markdown)
    if slower:
        print(f"{len(slower)} case(s) slower than {args.baseline_tolerance:g}x the baseline: "
              + ", ".join(f"{r.name} (x{r.slower:.1f})" for r in slower), file=out)
    if args.json:
        report.write_json(args.json)
    if args.junit:
        report.write_junit(args.junit)
    failed = not report.ok or (args.fail_on_slower and bool(slower))
    return 1 if failed else 0



def _run_benchmark(args: argparse.Namespace, selected: list, out: TextIO) -> int:
    from ._benchmark import benchmark

    if args.repeats < 1 or args.calls < 1:
        raise SystemExit("jaxworld check --benchmark: --repeats and --calls must be at least 1.")

    def progress(row, index, total):
        if not args.no_progress:
            print(f"[{index + 1:>{len(str(total))}}/{total}] {row.name}", file=out, flush=True)

    report = benchmark(selected, repeats=args.repeats, calls=args.calls, on_row=progress)
    print(report.table(), file=out)
    report.write_json(args.benchmark_json)
    print(f"benchmark JSON written to {args.benchmark_json}", file=out)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(f"## jaxworld check --benchmark (suite `{args.suite}`)\n\n")
            fh.write(report.markdown())
    return 0
