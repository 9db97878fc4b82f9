"""jaxworld.testing: Scenario validation, references, check() on a representative slice of the
built-in suite (world scenarios included), isolation of world scenarios. The full suite is
parametrized, one `@pytest.mark.slow` test per case (and is what `jaxworld check` runs in CI)."""

from __future__ import annotations

import glob
import os
import re
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld
from jaxworld.testing import (
    OPERATORS,
    Scenario,
    World,
    WorldScenario,
    assert_passes,
    builtin_suite,
    check,
    matches,
    parametrize,
)

X = jnp.linspace(0.1, 1.0, 4)


def sum_sin_sq(x):
    return jnp.sum(jnp.sin(x) ** 2)


# -- validation ------------------------------------------------------------------------------


def test_unknown_operator_names_the_valid_ones():
    with pytest.raises(ValueError, match=re.escape("unknown operator 'hessain'")) as info:
        Scenario(sum_sin_sq, (X,), "hessain")
    for op in OPERATORS:
        assert repr(op) in str(info.value)


def test_hessian_modes_are_parsed_and_checked():
    assert Scenario(sum_sin_sq, (X,), "hessian").operator == "hessian:fwd_over_rev"
    assert Scenario(sum_sin_sq, (X,), "hessian:rev_over_fwd").operator == "hessian:rev_over_fwd"
    with pytest.raises(ValueError, match=re.escape("unknown Hessian mode 'fwd_over_back'")):
        Scenario(sum_sin_sq, (X,), "hessian:fwd_over_back")
    with pytest.raises(ValueError, match=re.escape("operator 'grad:rev' takes no mode")):
        Scenario(sum_sin_sq, (X,), "grad:rev")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(fun=3, args=(X,), operator="grad"), TypeError, "fun must be callable, got int"),
    (dict(fun=sum_sin_sq, args=X, operator="grad"), TypeError, "args must be a tuple"),
    (dict(fun=sum_sin_sq, args=(), operator="grad"), ValueError, "args is empty"),
    (dict(fun=sum_sin_sq, args=(X,), operator=7), TypeError, "operator must be a string"),
    (dict(fun=sum_sin_sq, args=(X, 2), operator="grad", static_argnums=(0,)), ValueError,
     "argument 0 is the one differentiated"),
    (dict(fun=sum_sin_sq, args=(X,), operator="grad", static_argnums=(3,)), ValueError,
     "static_argnums (3,) must be positions into args"),
    (dict(fun=lambda x, y: x, args=(X, X), operator="hvp"), ValueError,
     "operator 'hvp' is jaxworld.hvp(f)(x, v), for a function of one argument"),
    (dict(fun=sum_sin_sq, args=(X,), operator="grad", expect_error="TypeError"), TypeError,
     "expect_error must be an exception class"),
    (dict(fun=sum_sin_sq, args=(X,), operator="grad", rtol=-1.0), ValueError,
     "rtol must be a non-negative number"),
    (dict(fun=sum_sin_sq, args=(X,), operator="grad", prepare_args=(X, X)), ValueError,
     "prepare_args must be a tuple like args (1 arguments)"),
    (dict(fun=sum_sin_sq, args=(X,), operator="grad", via="jit"), ValueError,
     "via must be one of ('operator', 'wrap')"),
])
def test_scenario_validation_messages(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Scenario(**kwargs)


def test_world_scenario_validation():
    with pytest.raises(ValueError, match=re.escape("name must be a string containing 'world'")):
        WorldScenario("helper redefined", "def f(x): return x", "", "grad", (X,))
    with pytest.raises(ValueError, match=re.escape(
            "expect must be 'new_world', 'no_retrace' or 'follows'")):
        WorldScenario("world: x", "def f(x): return x", "", "grad", (X,), expect="same")
    with pytest.raises(ValueError, match=re.escape("unknown operator 'hess'")):
        WorldScenario("world: x", "def f(x): return x", "", "hess", (X,))
    with pytest.raises(TypeError, match=re.escape("change must be Python source (a str) or a "
                                                  "callable")):
        WorldScenario("world: x", "def f(x): return x", 3, "grad", (X,))


def test_default_names_and_check_input_errors():
    assert Scenario(sum_sin_sq, (X,), "jvp").name == "sum_sin_sq:jvp"
    with pytest.raises(TypeError, match=re.escape("every item must be a jaxworld.testing."
                                                  "Scenario or WorldScenario; got int")):
        check([1])


def test_matches_is_pytest_like():
    assert matches("world", "world: global float rebound hessian")
    assert matches("world and not reload", "world: global float rebound")
    assert not matches("world and not float", "world: global float rebound")
    assert matches("(grad or hvp) and sin", "sin_sq: hvp")
    with pytest.raises(ValueError, match="unbalanced parentheses"):
        matches("(grad", "x")


# -- references and verdicts ----------------------------------------------------------------


def test_each_reference_is_reported_and_x64_does_not_leak():
    assert not jax.config.jax_enable_x64
    report = check([Scenario(sum_sin_sq, (X,), "grad", reference=lambda x: np.sin(2 * x))])
    assert not jax.config.jax_enable_x64
    row = report.rows[0]
    assert report.ok, report.table()
    assert set(row.comparisons) == {"jax", "fd", "analytic"}
    assert row.comparisons["fd"].max_abs < 1e-5
    assert row.time > 0 and row.prepare_time > 0 and row.eval_time > 0


def test_x64_stays_on_when_the_caller_enabled_it(enable_x64):
    x = jnp.linspace(0.1, 1.0, 4)
    assert x.dtype == jnp.float64
    report = check([Scenario(sum_sin_sq, (x,), "hessian")])
    assert jax.config.jax_enable_x64
    assert report.ok, report.table()
    # float64 results are held to float64 tolerances.
    assert report.rows[0].comparisons["jax"].rtol == 1e-10


def test_a_wrong_analytic_reference_fails_that_reference_only():
    report = check([Scenario(sum_sin_sq, (X,), "grad", reference=lambda x: np.sin(2 * x) + 0.1)])
    row = report.rows[0]
    assert row.status == "fail"
    assert row.comparisons["jax"].ok and row.comparisons["fd"].ok
    assert not row.comparisons["analytic"].ok
    assert row.comparisons["analytic"].max_abs == pytest.approx(0.1, rel=1e-3)
    assert "analytic reference: max abs error 1.00e-01" in row.message
    assert report.failures == [row] and not report.ok


def test_finite_differences_catch_a_wrong_custom_jvp_rule_plain_jax_agrees_with():
    from tests.wrong_rule_scenarios import SCENARIOS, WRONG_FACTOR
    from tests.wrong_rule_scenarios import X as x

    report = check(SCENARIOS)
    assert [r.name for r in report.failures] == ["wrong custom_jvp rule: grad"]
    row = report.failures[0]
    assert row.comparisons["jax"].ok  # plain JAX uses the same wrong rule
    expected = np.max(np.abs((WRONG_FACTOR - 1) * np.asarray(x) * np.cos(np.asarray(x))))
    assert row.comparisons["fd"].max_abs == pytest.approx(expected, rel=1e-3)


def test_a_scenario_that_raises_is_an_error_row_and_the_run_goes_on():
    def broken(x):
        raise RuntimeError("boom in user code")

    report = check([Scenario(broken, (X,), "grad", name="broken"),
                    Scenario(sum_sin_sq, (X,), "grad", name="fine")])
    assert [r.status for r in report.rows] == ["error", "pass"]
    assert "RuntimeError: boom in user code" in report["broken"].message


def test_expect_error_must_match_what_plain_jax_does():
    # Plain JAX can differentiate this: the expectation is wrong and the case says so.
    report = check([Scenario(sum_sin_sq, (X,), "grad", expect_error=ValueError)])
    assert report.rows[0].status == "fail"
    assert "plain JAX did not raise ValueError" in report.rows[0].message

    def while_fn(x):
        return jnp.sum(jax.lax.while_loop(lambda c: c[0] < 2,
                                          lambda c: (c[0] + 1, jnp.sin(c[1])), (0, x))[1])

    report = check([Scenario(while_fn, (X,), "grad", expect_error=ValueError)])
    assert report.ok, report.table()
    assert "raised ValueError like plain JAX" in report.rows[0].message
    assert "Reverse-mode differentiation does not work for lax.while_loop" in report.rows[0].message


# -- the built-in suite --------------------------------------------------------------------

# A representative slice for the default run: every operator family, pytree parameters, control
# flow, custom rules, integer/static/complex arguments, expected JAX errors, and world changes
# (including a module reload and the two "nothing to re-trace" cases).
SLICE = [
    "sin_sq: grad", "sin_sq: hessian:rev_over_rev", "sin_sq: hvp", "sin_sq: third_order",
    "sin_sq via wrap: hessian:fwd_over_rev", "tanh_exp: vjp", "tanh_exp: jacfwd",
    "quadratic: hessian:fwd_over_rev", "eigh: sum of eigenvalues squared: grad", "mlp_loss: grad",
    "scan rnn: grad", "while_loop: jvp",
    "while_loop: grad (JAX cannot differentiate lax.while_loop / fori_loop with dynamic bounds "
    "in reverse mode; expects its ValueError)",
    "custom_vjp: jvp (JAX cannot apply forward mode to a custom_vjp function (jax #16049); "
    "expects its TypeError)",
    "integer argument: vjp", "static int argument: grad", "complex holomorphic sum sin^2: grad",
    "closure capturing an array: hvp",
    "world: global helper redefined", "world: global NumPy array mutated in place",
    "world: importlib.reload of a changed helper module",
    "world: defjvp called again on a custom_jvp (rule fixed)",
    "world: no-op advance re-traces nothing", "world: unrelated change re-traces nothing",
]


def test_builtin_suite_shape():
    suite = builtin_suite()
    names = [c.name for c in suite]
    assert len(names) == len(set(names)), "names must be unique"
    plain = [c for c in suite if c.kind == "scenario"]
    world = [c for c in suite if c.kind == "world"]
    assert len(plain) >= 60
    assert {c.spec.family for c in plain} == set(OPERATORS)
    assert all("world" in c.name for c in world)
    matrix = ["global helper redefined", "helper two calls deep", "global float rebound",
              "global JAX array rebound", "NumPy array mutated in place", "nonlocal",
              "__defaults__", "__code__", "method replaced on class", "defjvp called again",
              "functools.partial rebound", "importlib.reload", "module attribute monkeypatched",
              "no-op advance re-traces nothing", "unrelated change re-traces nothing"]
    for row in matrix:
        assert any(row in c.name for c in world), row
    assert set(SLICE) <= set(names)


def test_builtin_slice_passes():
    by_name = {c.name: c for c in builtin_suite()}
    report = check([by_name[n] for n in SLICE])
    assert report.ok, report.table()
    for row in report.rows:
        if "JAX cannot" in row.name:
            assert "like plain JAX" in row.message, row.name
            continue
        assert row.comparisons["jax"].ok, row.name
        if row.kind == "world":
            assert row.comparisons["jax"].ok and row.comparisons["jax@old"].ok
            expect_zero = "nothing" in row.name
            assert (row.retraces == 0) if expect_zero else (row.retraces >= 1), row.name
    assert report["sin_sq: hvp"].comparisons["fd"].ok
    assert "fd" in report["sin_sq: third_order"].not_applicable


# The whole nested-AD part of the built-in suite, one test per case (deselected by default; CI
# runs the same suite as `jaxworld check`). Its world-change rows run by default, through both
# stacks, in tests/test_world_changes.py.
@parametrize(lambda: [c for c in builtin_suite() if c.kind != "world"],
             marks=lambda case: pytest.mark.slow)
def test_builtin_case(scenario):
    assert_passes(scenario)


# -- world scenarios: they catch staleness, prove something, and leave no trace --------------

HELPER = WorldScenario(
    "world: helper redefined (test)",
    "def g(x):\n    return jnp.sin(x)\ndef f(x):\n    return jnp.sum(g(x) ** 2 * x)\n",
    "def g(x):\n    return jnp.cos(x) * 3.0\n", "hessian", (X,))


def test_a_stale_operator_fails_the_world_scenario():
    # With the 'frozen' policy jaxworld keeps the old world on purpose: the case must notice.
    with jaxworld.policy("frozen"):
        report = check([HELPER])
    row = report.rows[0]
    assert row.status == "fail"
    assert not row.comparisons["jax"].ok
    assert "plain JAX (traced fresh): max abs error" in row.message


def test_a_change_that_changes_nothing_is_reported_as_vacuous():
    vacuous = WorldScenario("world: vacuous", HELPER.setup, "UNUSED = 1.0", "hessian", (X,))
    row = check([vacuous]).rows[0]
    assert row.status == "fail"
    assert "the change did not change plain JAX's answer" in row.message


def _process_state():
    return (list(sys.path), set(sys.modules), jax.config.jax_enable_x64,
            sorted(glob.glob(os.path.join(tempfile.gettempdir(), "jaxworld-world-*"))))


def test_world_scenarios_leave_no_trace_but_the_epoch():
    by_name = {c.name: c for c in builtin_suite()}
    cases = [by_name["world: importlib.reload of a changed helper module"],
             by_name["world: module attribute monkeypatched"], HELPER]
    check(cases)  # first, so that lazily imported library modules are already in sys.modules
    before, epoch = _process_state(), jaxworld.epoch()
    report = check(cases)
    assert report.ok, report.table()
    assert _process_state() == before
    # Each case advances once. Since issue #12 a trace checks the live records first, and may
    # advance once more when an earlier case's closures (still alive) read what World.close()
    # restored.
    assert len(cases) <= jaxworld.epoch() - epoch <= 2 * len(cases)


def test_world_define_module_reload_and_close():
    with World("unit") as world:
        world.define("def f(x):\n    return x * 2.0\n")
        assert world["f"](1.0) == 2.0
        mod = world.module("jaxworld_unit_mod", "value = 1\n")
        assert mod.value == 1 and "jaxworld_unit_mod" in sys.modules
        assert world.module("jaxworld_unit_mod", "value = 22\n").value == 22
        fresh = world.fresh("f")
        assert fresh is not world["f"] and fresh(2.0) == 4.0
        with pytest.raises(KeyError, match=re.escape("nothing named 'g' is defined in this world")):
            world["g"]
        with pytest.raises(ValueError, match="already imported in this process"):
            world.module("os", "x = 1\n")
    assert "jaxworld_unit_mod" not in sys.modules
    with pytest.raises(RuntimeError, match="this world is closed"):
        world.define("x = 1")


def test_parametrize_gives_each_case_the_marks_asked_for():
    cases = [Scenario(lambda x: jnp.sum(x ** 2), (X,), "grad", name=name) for name in "ab"]
    mark = parametrize(cases, marks=lambda c: pytest.mark.slow if c.name == "b" else None)
    argname, params = mark.args
    assert argname == "scenario"
    assert [p.id for p in params] == ["a", "b"]
    assert [tuple(m.name for m in p.marks) for p in params] == [(), ("slow",)]
    assert [p.values[0] for p in params] == cases
