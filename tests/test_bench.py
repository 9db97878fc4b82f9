"""`jaxworld bench` (issue #6): structure of the results, no timing thresholds.

Timings depend on the machine and its load, so nothing here asserts a speed. What is asserted is
deterministic: the rows and JSON keys exist, every timed figure is a positive median of the
requested repetitions, a no-op `advance()` re-traces nothing, the relevant change re-traces and
gives plain JAX's Hessian, and compiled FLOPs through `jaxworld.wrap` equal plain JAX's exactly.
The full `--quick` run through the command line is marked slow.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from jaxworld import _bench, _cli

TINY = _bench.Config(sizes=(3,), steady_reps=2, batch_budget=0.001, compile_reps=1,
                     noop_reps=3, cycles=3, memory_baseline_cycles=2, trace_reps=1, warmup=False)


def _by_benchmark(rows):
    return {r.benchmark: r for r in rows}


def _check_timed(row, reps):
    assert row.unit == "s"
    assert row.reps == reps
    assert row.jaxworld > 0 and row.baseline > 0
    assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0


def test_steady_state_rows_and_flops_equal_plain_jax():
    rows = _by_benchmark(_bench.bench_steady("rosenbrock", 3, TINY))
    assert set(rows) == {"steady grad", "steady hvp", "steady hessian", "re-jit every call",
                         "flops grad", "flops hvp", "flops hessian"}
    for kind in ("grad", "hvp", "hessian"):
        _check_timed(rows[f"steady {kind}"], TINY.steady_reps)
        flops = rows[f"flops {kind}"]
        # Deterministic: the compiled program through jaxworld.wrap is plain JAX's.
        assert flops.unit == "flops" and flops.jaxworld > 0
        assert flops.jaxworld == flops.baseline
        assert flops.ratio == 1.0 and flops.met is True
    assert rows["steady hessian"].target == "<= 1.1"  # the n = 3 target of issue #6
    _check_timed(rows["re-jit every call"], TINY.compile_reps)


def test_advance_rows_noop_retraces_nothing_and_change_matches_plain():
    rows = _by_benchmark(_bench.bench_advance("rosenbrock", 3, TINY))
    noop, change = rows["no-op advance"], rows["relevant change"]
    _check_timed(noop, TINY.noop_reps)
    assert noop.detail["traces"] == 0 and noop.detail["derivations"] == 0
    assert noop.detail["advance_s"] > 0
    _check_timed(change, TINY.compile_reps)
    assert change.detail["traces"] >= TINY.compile_reps  # every redefinition was re-traced
    assert change.detail["changed_helper"] == "term"
    assert change.detail["max_abs_error_vs_plain"] <= 1e-3


def test_first_call_and_trace_rows():
    first = _bench.bench_first_call("rosenbrock", 3, TINY)
    assert [r.benchmark for r in first] == ["first call hessian"]
    _check_timed(first[0], TINY.compile_reps)
    [trace] = _bench.bench_trace_call_sites(TINY, n=4)
    assert trace.benchmark == "trace 20 call sites" and trace.target == "<= 0.5"
    _check_timed(trace, TINY.trace_reps)


def test_memory_row_is_absolute():
    [row] = _bench.bench_memory(TINY)
    assert row.unit == "MB" and row.ratio is None and row.target == "< 50"
    assert row.detail["cycles"] == TINY.cycles and row.detail["plain_cycles"] == 2
    assert math.isfinite(row.jaxworld) and row.met is (row.jaxworld < 50)


def _rows_for_outputs():
    rows = []
    for n, ratio in ((3, 1.05), (64, 1.01)):
        rows.append(_bench.Row("steady hessian", "rosenbrock", n, ratio * 1e-5, 1e-5,
                               "jax.jit of plain", "s", ratio, "<= 1.1", True, 3))
        rows.append(_bench.Row("flops hessian", "mlp", n, 603.0, 603.0, "plain", "flops", 1.0,
                               "<= 1", True, 1))
    rows.append(_bench.Row("relevant change", "rosenbrock", 64, 2.0, 1.0, "fresh", "s", 2.0,
                           "<= 1.1", False, 1))
    rows.append(_bench.Row("memory", "rosenbrock", 3, 1.5, 0.5, "plain", "MB", None, "< 50",
                           True, 1, {"cycles": 3}))
    return rows


def test_table_json_markdown_and_plot(tmp_path):
    rows = _rows_for_outputs()
    meta = {"machine": _bench.machine(), "command": "jaxworld bench --test", "seconds": 1.0,
            "load_average_start": None, "load_average_end": None}
    table = _bench.format_table(rows)
    assert table.splitlines()[0].split()[:3] == ["benchmark", "function", "n"]
    assert len(table.splitlines()) == len(rows) + 2
    assert "NO" in table  # the missed target is shown, not hidden

    data = json.loads(json.dumps(_bench.to_json(rows, meta)))
    assert set(data) == {"meta", "results"}
    assert {"cpu", "cores", "jax", "backend"} <= set(data["meta"]["machine"])
    assert set(data["results"][0]) == {"benchmark", "function", "n", "jaxworld", "baseline",
                                       "baseline_is", "unit", "ratio", "target", "met", "reps",
                                       "detail"}

    markdown = _bench.format_markdown(rows, meta)
    assert markdown.startswith("| benchmark | function | n |")
    assert markdown.count("\n| ") == len(rows)  # header at the start, then one line per row
    assert "jaxworld bench --test" in markdown

    png = tmp_path / "bench.png"
    _bench.plot(rows, str(png), meta)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_module_imports_matplotlib_only_for_plots():
    code = "import sys, jaxworld._bench; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_cli_options_reach_the_config():
    import argparse

    parser = argparse.ArgumentParser()
    _bench.add_arguments(parser)
    args = parser.parse_args(["--quick", "--sizes", "3", "--repeats", "2", "--cycles", "4",
                              "--json", "out.json"])
    cfg = _bench.Config.make(args.quick, args.sizes, args.cycles, args.repeats)
    assert cfg.sizes == (3,) and cfg.cycles == 4 and cfg.steady_reps == 2
    assert _bench._runner._command(args) == (
        "jaxworld bench --quick --sizes 3 --cycles 4 --repeats 2 --json out.json")
    assert _bench.Config.make(True).sizes == (3, 64)
    assert _bench.Config.make(False).sizes == (3, 64, 512)


@pytest.mark.slow
def test_quick_run_through_the_command_line(tmp_path, capsys):
    out_json, out_md, out_png = tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png"
    status = _cli.main(["bench", "--quick", "--json", str(out_json), "--markdown", str(out_md),
                        "--plot", str(out_png)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "ratio" in printed and "targets met" in printed
    data = json.loads(out_json.read_text())
    results = data["results"]
    assert data["meta"]["quick"] is True
    seen = {(r["benchmark"], r["function"], r["n"]) for r in results}
    for name in _bench.FUNCTIONS:
        for n in (3, 64):
            for bench in ("steady grad", "steady hvp", "steady hessian", "first call hessian",
                          "no-op advance", "relevant change", "flops grad", "flops hvp",
                          "flops hessian", "re-jit every call"):
                assert (bench, name, n) in seen
    assert all(r["ratio"] == 1.0 for r in results if r["benchmark"].startswith("flops"))
    assert any(r["benchmark"] == "memory" for r in results)
    assert any(r["benchmark"] == "trace 20 call sites" for r in results)
    assert out_md.read_text().startswith("| benchmark |")
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_eager_dispatch_rows_one_per_leaf_count():
    rows = _bench.bench_eager_dispatch(TINY, leaves=(1, 20))
    assert [(r.benchmark, r.n) for r in rows] == [("eager dispatch", 1), ("eager dispatch", 20)]
    for row in rows:
        _check_timed(row, TINY.steady_reps)
        assert row.target == "<= 1.5" and row.met in (True, False)
        assert row.detail["leaves"] == row.n


def test_groups_table_selects_by_only_and_runs_per_function_groups_in_the_size_loop():
    import dataclasses

    assert all(isinstance(g.module.PER_FUNCTION, bool) for g in _bench.GROUPS.values())
    labels = []
    rows = _bench.run(dataclasses.replace(TINY, only=("first", "trace")), log=labels.append)
    assert [r.benchmark for r in rows] == ["first call hessian"] * len(_bench.FUNCTIONS) + [
        "trace 20 call sites"]
    assert [r.function for r in rows[:-1]] == list(_bench.FUNCTIONS)
    assert len(labels) == len(rows)


@pytest.mark.parametrize("name", [*_bench.FUNCTIONS, "model"])
def test_capture_rows_time_a_first_trace_and_the_retrace_a_change_causes(name):
    from jaxworld._bench import _capture

    rows = _by_benchmark(_capture.bench_capture(name, 3, TINY))
    assert set(rows) == {"trace with dependency record", "hessian trace with dependency record",
                         "re-trace after a change"}
    reps = max(TINY.trace_reps, 5) * 3
    for row in rows.values():
        _check_timed(row, reps)
        assert row.target == "<= 1.15"
    for key in ("trace with dependency record", "re-trace after a change"):
        assert rows[key].detail["record_entries"] > 0
    assert "first trace" in rows["trace with dependency record"].baseline_is
    # The user's first trace: `jax.hessian` of a fresh `wrap(f)`, with plain JAX's beside it.
    hessian = rows["hessian trace with dependency record"]
    assert "jax.hessian(wrap(f))" in hessian.baseline_is
    assert hessian.detail["plain_jax_hessian_trace_s"] > 0
    assert hessian.detail["over_plain_jax_hessian_trace"] > 0
    # After a change, `advance()`'s walk of the new world is the re-trace's record.
    assert rows["re-trace after a change"].detail["walk_reused"] == 1.0


def test_scoped_rows_blast_radius_has_both_controls_and_no_global_fallback():
    from jaxworld._bench import _scoped

    rows = _by_benchmark(_scoped.bench_scoped("rosenbrock", 3, TINY))
    assert set(rows) == {"blast radius", "blast radius, vs plain eviction",
                         "relevant change, drop-in"}
    for row in rows.values():
        _check_timed(row, max(TINY.compile_reps, 3) * 3)
    blast = rows["blast radius"]
    # Every relevant advance was scoped: no `jax.jit` in the process had its key bumped.
    assert blast.detail["scoped_invalidations"] >= blast.reps
    assert blast.detail["global_invalidations"] == 0
    assert rows["relevant change, drop-in"].detail["global_invalidations"] == 0
    assert rows["blast radius, vs plain eviction"].detail["plain_eviction_ratio_to_steady"] > 0
