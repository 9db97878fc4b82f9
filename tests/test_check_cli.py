"""`jaxworld check`: selection, listing, JUnit and JSON output, baselines, progress, exit status,
and the self-test with a deliberately wrong custom_jvp rule (tests/wrong_rule_scenarios.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import jax.numpy as jnp
import numpy as np
import pytest

from jaxworld._cli import main
from jaxworld.testing import Scenario

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 3 cases (float: 2 rows), without the modifiers' variants of them
SMALL = "(sin_sq: grad or sin_sq: hvp or world: global float rebound) and not jitify"


def _junit_cases(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0], suites[0].findall("testcase")


def test_list_selects_with_k(capsys):
    assert main(["check", "--list", "-k", "world and not jit"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[-1].endswith("cases selected")
    listed = lines[:-1]
    assert listed and all("world" in line and "jit" not in line for line in listed)
    assert "world: importlib.reload of a changed helper module  [hessian:fwd_over_rev]" in listed


def test_small_slice_writes_valid_junit_and_json(tmp_path, capsys):
    junit, js = tmp_path / "check.xml", tmp_path / "check.json"
    status = main(["check", "-k", SMALL, "--junit", str(junit), "--json", str(js)])
    out = capsys.readouterr().out
    assert status == 0, out
    # Plain progress lines (stdout is not a terminal here), then the table and the summary.
    assert "[1/4] PASS" in out
    assert "status  case" in out and "plain JAX" in out and "finite diff." in out
    assert out.strip().splitlines()[-1].startswith("4 passed, 0 failed, 0 errors")

    suite, cases = _junit_cases(junit)
    assert suite.get("tests") == "4" and suite.get("failures") == "0"
    assert suite.get("errors") == "0"
    names = [c.get("name") for c in cases]
    assert "sin_sq: hvp [hvp]" in names
    assert all(float(c.get("time")) > 0 for c in cases)
    assert all(c.find("failure") is None and c.find("error") is None for c in cases)

    data = json.loads(js.read_text())
    assert data["ok"] is True and data["format"] == "jaxworld-check/1"
    rows = {r["name"]: r for r in data["rows"]}
    assert set(rows) == {"sin_sq: grad", "sin_sq: hvp", "world: global float rebound",
                         "world: global float rebound, hvp"}
    grad = rows["sin_sq: grad"]
    assert grad["status"] == "pass" and grad["time"] > 0 and grad["eval_time"] > 0
    assert set(grad["errors"]) == {"jax", "fd"}
    assert grad["errors"]["fd"]["max_abs"] < 1e-5 and grad["errors"]["fd"]["ok"] is True
    assert rows["world: global float rebound"]["retraces"] >= 1


def test_wrong_custom_jvp_rule_fails_exactly_that_case(tmp_path, capsys):
    from tests.wrong_rule_scenarios import WRONG_FACTOR, X

    junit, js = tmp_path / "w.xml", tmp_path / "w.json"
    status = main(["check", "--suite", "tests.wrong_rule_scenarios:SCENARIOS", "--no-progress",
                   "--junit", str(junit), "--json", str(js)])
    out = capsys.readouterr().out
    assert status == 1
    expected = float(np.max(np.abs((WRONG_FACTOR - 1) * np.asarray(X) * np.cos(np.asarray(X)))))
    assert f"finite differences (float64): max abs error {expected:.2e}" in out
    assert "3 passed, 1 failed, 0 errors" in out

    data = json.loads(js.read_text())
    failed = [r for r in data["rows"] if r["status"] != "pass"]
    assert [r["name"] for r in failed] == ["wrong custom_jvp rule: grad"]
    errors = failed[0]["errors"]
    assert errors["jax"]["ok"] is True and errors["jax"]["max_abs"] < 1e-6  # JAX agrees
    assert errors["fd"]["ok"] is False
    assert errors["fd"]["max_abs"] == pytest.approx(expected, rel=1e-3)

    suite, cases = _junit_cases(junit)
    assert suite.get("failures") == "1"
    failing = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failing] == ["wrong custom_jvp rule: grad [grad]"]
    assert f"{expected:.2e}" in failing[0].find("failure").get("message")


def _raising(x):
    raise ZeroDivisionError("scenario body fails")


def raising_suite():
    x = jnp.linspace(0.1, 1.0, 3)
    return [Scenario(_raising, (x,), "grad", name="raises"),
            Scenario(lambda x: jnp.sum(x ** 2), (x,), "grad", name="fine")]


def test_a_raising_scenario_is_a_failure_not_a_crash(tmp_path, capsys):
    junit = tmp_path / "r.xml"
    status = main(["check", "--suite", f"{__name__}:raising_suite", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert status == 1
    assert "ZeroDivisionError: scenario body fails" in out
    assert "1 passed, 0 failed, 1 errors" in out
    suite, cases = _junit_cases(junit)
    assert suite.get("errors") == "1"
    error = cases[0].find("error")
    assert error is not None and "ZeroDivisionError" in error.get("message")


def test_baseline_flags_slower_cases(tmp_path, capsys):
    js = tmp_path / "now.json"
    assert main(["check", "-k", "sin_sq: grad", "--json", str(js), "--no-progress"]) == 0
    capsys.readouterr()
    data = json.loads(js.read_text())
    fast = dict(data, rows=[dict(r, time=r["time"] / 100) for r in data["rows"]])
    slow = dict(data, rows=[dict(r, time=r["time"] * 100) for r in data["rows"]])
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    (tmp_path / "slow.json").write_text(json.dumps(slow))

    args = ["check", "-k", "sin_sq: grad", "--no-progress", "--json", str(js),
            "--baseline-min-seconds", "0"]
    assert main(args + ["--baseline", str(tmp_path / "fast.json")]) == 0  # flagged, not failed
    out = capsys.readouterr().out
    assert "1 case(s) slower than 2x the baseline: sin_sq: grad" in out
    assert json.loads(js.read_text())["rows"][0]["slower"] > 2
    assert main(args + ["--baseline", str(tmp_path / "fast.json"), "--fail-on-slower"]) == 1
    capsys.readouterr()
    assert main(args + ["--baseline", str(tmp_path / "slow.json")]) == 0
    assert "slower than" not in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="is not a `jaxworld check --json` report"):
        main(args + ["--baseline", str(tmp_path / "bad.json")])


def test_bad_suite_and_pattern_are_clear_errors():
    with pytest.raises(SystemExit, match="--suite must be 'builtin' or MODULE:ATTR"):
        main(["check", "--suite", "nonsense"])
    with pytest.raises(SystemExit, match="has no attribute 'NOPE'"):
        main(["check", "--suite", "tests.wrong_rule_scenarios:NOPE"])
    with pytest.raises(SystemExit, match="unbalanced parentheses"):
        main(["check", "-k", "(grad"])


def test_progress_bar_on_a_terminal():
    pytest.importorskip("tqdm")  # optional at runtime; in the `test` extra
    from jaxworld.testing import _cli

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    parser = __import__("argparse").ArgumentParser()
    _cli.add_arguments(parser)
    status = _cli.run(parser.parse_args(["-k", "sin_sq: value and not jitify"]), stream=stream)
    out = stream.getvalue()
    assert status == 0
    assert "case/s" in out or "s/case" in out  # tqdm's rate display
    assert "[1/1]" not in out  # no plain lines when a bar is shown
    assert "1 passed, 0 failed" in out


def test_command_line_entry_runs_in_a_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "jaxworld._cli", "check", "-k", "sin_sq: value and not jitify",
         "--junit", str(tmp_path / "x.xml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[1/1] PASS  sin_sq: value" in proc.stdout
    _, cases = _junit_cases(tmp_path / "x.xml")
    assert [c.get("name") for c in cases] == ["sin_sq: value [value]"]


# -- issue #15: --markdown, --benchmark (through pytester, as a user's CI runs them) ----------

pytest_plugins = ["pytester"]


def _copy_module(pytester, name):
    with open(os.path.join(REPO, "tests", f"{name}.py")) as fh:
        pytester.makepyfile(**{name: fh.read()})


def test_markdown_summary_for_ci(pytester):
    _copy_module(pytester, "wrong_rule_scenarios")
    result = pytester.run(sys.executable, "-m", "jaxworld._cli", "check", "--suite",
                          "wrong_rule_scenarios:SCENARIOS", "--no-progress", "--markdown",
                          "summary.md")
    assert result.ret == 1
    text = (pytester.path / "summary.md").read_text()
    lines = text.splitlines()
    assert lines[0] == "## jaxworld check (suite `wrong_rule_scenarios:SCENARIOS`): FAILED"
    assert "| scenario | 3 | 1 | 0 |" in lines
    failures = lines[lines.index("### Failures"):]
    assert any(line.startswith("| wrong custom_jvp rule: grad | grad | fail | finite "
                               "differences (float64): max abs error") for line in failures)
    assert sum(line.startswith("| pass |") for line in lines) == 3
    assert "<details><summary>All cases</summary>" in lines


def test_benchmark_table_and_json(pytester):
    result = pytester.run(
        sys.executable, "-m", "jaxworld._cli", "check", "--benchmark", "--repeats", "1",
        "--calls", "3", "-k", "(sin_sq: hvp or sin_sq: vjp or world: global float rebound) and "
        "not jitify and not batchify", "--benchmark-json", "bench.json", "--markdown", "b.md")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "case*operator*first call ms*steady call us*steady x*compile ms*traces",
        "sin_sq: vjp*vjp*/*/*/*/*", "sin_sq: hvp*hvp*/*/*/*/*",
        "world: global float rebound*world-change case (not benchmarked)*",
        "2 cases measured (jaxworld / plain JAX, medians of 1 first calls and 3 steady calls, "
        "interleaved)*",
        "benchmark JSON written to bench.json"])
    data = json.loads((pytester.path / "bench.json").read_text())
    assert data["format"] == "jaxworld-check-benchmark/1" and data["calls"] == 3
    rows = {r["name"]: r for r in data["rows"]}
    for name in ("sin_sq: vjp", "sin_sq: hvp"):
        for side in ("jaxworld", "plain"):
            figures = rows[name][side]
            assert figures["first_call"] > figures["steady_call"] > 0, (name, side)
            assert figures["compile"] > 0 and figures["traces"] >= 1, (name, side)
    assert rows["world: global float rebound"]["jaxworld"] is None
    md = (pytester.path / "b.md").read_text()
    assert "| case | operator | first call ms (jaxworld / plain) |" in md
    assert "| sin_sq: hvp | hvp |" in md


def test_benchmark_and_mutate_are_separate_runs():
    with pytest.raises(SystemExit, match="--mutate and --benchmark are separate runs"):
        main(["check", "--mutate", "--benchmark"])
