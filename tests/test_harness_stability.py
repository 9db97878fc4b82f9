"""Stability checks of every scenario (issue #15, item 4): steady-state calls neither re-trace
nor re-compile, result dtypes and weak types equal plain JAX's, inputs are intact, and a
preparation refuses another function or signature. The self-test module
tests/unstable_scenarios.py breaks each check on purpose and is run through the CLI."""

from __future__ import annotations

import json
import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxworld.testing import PreparationMismatchError, Scenario, check, prepare
from jaxworld.testing._stability import Counters, Snapshot, dtype_mismatches

pytest_plugins = ["pytester"]

HERE = os.path.dirname(os.path.abspath(__file__))
X = jnp.linspace(0.1, 1.0, 4)


def cubic(x):
    return jnp.sum(x ** 3)


def test_unstable_scenarios_fail_each_on_its_own_check(pytester):
    with open(os.path.join(HERE, "unstable_scenarios.py")) as fh:
        pytester.makepyfile(unstable_scenarios=fh.read())
    result = pytester.run(sys.executable, "-m", "jaxworld._cli", "check", "--suite",
                          "unstable_scenarios:SCENARIOS", "--no-progress", "--json", "out.json")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*re-traces every call [[]value[]] fail: steady-state calls of the prepared operator "
        "(same signature) re-traced or re-compiled: 2 JAX trace(s), 0 jaxworld trace(s), "
        "2 compile(s)*",
        "*edits its input in place [[]grad[]] fail: argument leaf args[[]0[]] was changed in "
        "place: max abs change 4.9*",
        "*weak type drifts [[]value[]] fail: result dtype differs from plain JAX's at result: "
        "got float32 (weak), plain JAX float32*",
        "*1 passed, 3 failed, 0 errors*"])
    rows = {r["name"]: r for r in json.loads((pytester.path / "out.json").read_text())["rows"]}
    broken = {"re-traces every call": "steady", "edits its input in place": "intact",
              "weak type drifts": "dtypes"}
    for name, row in rows.items():
        failing = {k for k, v in row["stability"].items() if v != "ok"}
        assert failing == ({broken[name]} if name in broken else set()), (name, row)
        # The values agree with plain JAX: only the stability check catches the bug.
        assert row["errors"]["jax"]["ok"], name
    assert set(rows["stable control"]["stability"]) == {"steady", "intact", "dtypes",
                                                         "mismatch"}
    assert rows["stable control"]["steady_traces"] == 0
    assert rows["re-traces every call"]["steady_compiles"] == 2


def test_every_check_runs_and_holds_on_good_scenarios():
    cases = [Scenario(cubic, (X,), "hessian"), Scenario(cubic, (X,), "vjp"),
             Scenario(lambda x, n: jnp.sum(x ** n), (X, 3), "grad", static_argnums=(1,),
                      name="static power"),
             Scenario(lambda p: jnp.sum(p["a"] * p["b"] ** 2), ({"a": X, "b": X},), "hvp",
                      name="pytree hvp")]
    report = check(cases)
    assert report.ok, report.table()
    for row in report.rows:
        assert row.stability == {"intact": "ok", "steady": "ok", "dtypes": "ok",
                                 "mismatch": "ok"}, row.name
        assert (row.steady_traces, row.steady_compiles) == (0, 0)


def test_a_preparation_refuses_another_function_and_signature():
    prepared = prepare(Scenario(cubic, (X,), "grad"))
    np.testing.assert_allclose(prepared(X), 3 * X ** 2, rtol=1e-6)

    def other(x):
        return jnp.sum(x ** 3)

    with pytest.raises(PreparationMismatchError, match=re.escape(
            "this 'grad' operator was prepared for function cubic")) as info:
        prepared.call(other, X)
    assert "but it was called for test_a_preparation_refuses_another_function_and_signature" \
           ".<locals>.other" in str(info.value)
    assert "jaxworld.testing.prepare(Scenario(" in str(info.value)  # the fix
    with pytest.raises(PreparationMismatchError, match=re.escape(
            "was prepared for arguments (float32[4]) as PyTreeDef((*,)), but it was called "
            "with (float32[5]) as PyTreeDef((*,))")):
        prepared(jnp.ones(5))
    with pytest.raises(PreparationMismatchError, match=re.escape(
            "prepared for arguments (float32[4])")):
        prepared(np.ones(4, np.float64))  # another dtype
    static = prepare(Scenario(lambda x, n: jnp.sum(x ** n), (X, 3), "grad", static_argnums=(1,)))
    with pytest.raises(PreparationMismatchError, match=re.escape("static args[1]=3")):
        static(X, 4)
    assert prepared.call(cubic, X).shape == (4,)


def test_snapshot_sees_edits_donation_and_structure():
    a = np.arange(3.0)
    donated = jnp.ones(2)
    args = ({"a": a, "d": donated}, 2)
    snap = Snapshot(args)
    assert snap.changes(args) == []
    a[1] = 7.0
    donated.delete()  # what donation does to a JAX array
    assert snap.changes(args) == [
        "argument leaf args[0]['a'] was changed in place: max abs change 6",
        "argument leaf args[0]['d'] was deleted (donated to a computation)"]
    assert "pytree structure changed" in Snapshot(args).changes(({"a": a}, 2))[0]


def test_dtype_mismatches_name_the_leaf():
    got = {"w": jnp.ones(2), "b": jnp.asarray(1.0)}
    want = {"w": jnp.ones(2, jnp.float16), "b": jnp.float32(1.0)}
    assert dtype_mismatches(got, want) == ["['b']: got float32 (weak), plain JAX float32",
                                           "['w']: got float32, plain JAX float16"]
    assert dtype_mismatches(got, got) == []


def test_counters_count_jax_traces_and_compiles():
    f = jax.jit(lambda x: jnp.sin(x) * 2.0)
    x = np.ones(3, np.float32)  # no JAX op outside f: each count is f's alone
    with Counters() as first:
        f(x)
    with Counters() as again:
        f(x)
    assert (first.jax_traces, first.compiles) == (1, 1) and first.compile_seconds > 0
    assert (again.jax_traces, again.compiles, again.jaxworld_traces) == (0, 0, 0)
