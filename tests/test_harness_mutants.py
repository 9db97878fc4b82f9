"""Staleness mutation testing (issue #15, item 3): `mutants(scenario)` derives one world case per
user-level dependency of the scenario's function (through the dependency record's `sites()`);
`jaxworld check --mutate` runs them. When one kind of dependency is patched out of jaxworld's
tracking, the mutants of that kind fail, naming the dependency."""

from __future__ import annotations

import importlib
import os
import sys

import jax.numpy as jnp
import numpy as np

from jaxworld import _deps
from jaxworld._cli import main
from jaxworld.testing import Scenario, builtin_suite, check, mutants, mutants_of
from jaxworld.testing._builtin import USER_CODE

pytest_plugins = ["pytester"]

X = jnp.linspace(0.1, 1.0, 5)
LAYER_CASE = "user code: object with a method and fields: hessian:fwd_over_rev"


def _layer_scenario():
    return {c.name: c for c in builtin_suite()}[LAYER_CASE]


def _patch_out_methods(monkeypatch):
    """jaxworld stops tracking class attributes (methods): the walk no longer expands classes.

    `settings.reach = False` is the record before issue #11, without the cross-check of the code
    that ran during the trace (which would otherwise notice the unwalked method and re-trace at
    every advance: safe). The walk looks its rules up in `EXPANDERS` through a per-type cache
    (`_walk._expander_rule`), replaced too; everything is restored after the test.
    """
    walk = importlib.import_module("jaxworld._deps._walk")
    monkeypatch.setattr(_deps.settings, "reach", False)
    monkeypatch.setitem(_deps.EXPANDERS, type, lambda *args, **kwargs: None)
    monkeypatch.setattr(walk, "_expander_rule", walk._rules(_deps.EXPANDERS))


def test_mutants_cover_each_kind_and_are_undone():
    layer, weights, offsets = USER_CODE["LAYER"], USER_CODE["LAYER"].weights.copy(), \
        USER_CODE["OFFSETS"].copy()
    apply, activation = USER_CODE["Layer"].apply, USER_CODE["activation"]
    cases = mutants(_layer_scenario())
    kinds = {c.tags[-1] for c in cases}
    assert kinds == {"function", "method", "number", "array"}, [c.name for c in cases]
    assert all(c.name.startswith(f"world: mutant of {LAYER_CASE}: ") for c in cases)
    names = [c.name[len(f"world: mutant of {LAYER_CASE}: "):] for c in cases]
    assert sorted(names) == sorted([
        "method 'apply' replaced (output x1.5)", "helper 'activation' wrapped (output x1.5)",
        "array 'weights' edited in place (x1.5 + 0.25)", "number 'scale' nudged 1.2 -> 2.05",
        "number 'TEMPERATURE' nudged 0.8 -> 1.45"])
    apply_case = cases[names.index("method 'apply' replaced (output x1.5)")]
    assert apply_case.description == (
        "the method dependency attribute 'apply' of class 'Layer' (class of global 'LAYER' of "
        "module 'jaxworld_check_user_code' (read by layer_loss)), replaced on its class by one "
        "scaling its output by 1.5")
    report = check(cases)
    assert report.ok, report.table()
    assert all(r.retraces >= 1 for r in report.rows)
    # Every mutation was put back.
    assert USER_CODE["LAYER"] is layer and layer.scale == 1.2
    np.testing.assert_array_equal(layer.weights, weights)
    np.testing.assert_array_equal(USER_CODE["OFFSETS"], offsets)
    assert USER_CODE["Layer"].apply is apply and USER_CODE["activation"] is activation
    assert USER_CODE["TEMPERATURE"] == 0.8


def test_patched_out_methods_fail_naming_the_dependency(monkeypatch):
    cases = mutants(_layer_scenario())  # the sites are read before tracking is patched
    apply_case = [c for c in cases if "method 'apply'" in c.name]
    with monkeypatch.context() as control:  # the record before issue #11 tracks the method
        control.setattr(_deps.settings, "reach", False)
        assert check(apply_case).ok
    _patch_out_methods(monkeypatch)
    report = check(cases)
    failed = {r.name: r for r in report.failures}
    method = [n for n in failed if "method 'apply' replaced" in n]
    assert len(method) == 1, report.table()
    assert "jaxworld did not follow the method dependency attribute 'apply' of class 'Layer'" in \
        failed[method[0]].message
    assert "plain JAX (traced fresh): max abs error" in failed[method[0]].message
    passed = [r.name for r in report.rows if r.ok]
    assert any("number 'TEMPERATURE'" in n for n in passed)  # globals are still tracked


def test_mutate_on_the_builtin_suite_passes_and_reports_a_patched_out_kind(monkeypatch, capsys):
    assert main(["check", "--mutate", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "--mutate: 7 mutants of the dependencies of" in out
    assert "special method __init__ is not replaced" in out
    assert "7 passed, 0 failed, 0 errors" in out

    from jaxworld.testing import _mutants

    derive = _mutants.mutants_of

    def derive_then_patch(*args, **kwargs):
        derived = derive(*args, **kwargs)
        _patch_out_methods(monkeypatch)  # after the sites were read: jaxworld stops tracking
        return derived

    monkeypatch.setattr(_mutants, "mutants_of", derive_then_patch)
    assert main(["check", "--mutate", "--no-progress", "-k", "user code"]) == 1
    out = capsys.readouterr().out
    assert "attribute 'apply' of class 'Layer'" in out.split("Failures:")[1]


def test_mutants_of_picks_one_scenario_per_function():
    f = USER_CODE["offset_loss"]
    cases = [Scenario(f, (X,), "grad"), Scenario(f, (X,), "hessian"), Scenario(f, (X,), "vjp")]
    derived = mutants_of(cases)
    assert {c.operator for c in derived} == {"hessian:fwd_over_rev"}
    assert len(derived) == len(mutants(cases[1]))
    assert {c.operator for c in mutants(cases[2])} == {"jacrev"}  # no vjp in world cases


def test_a_user_package_through_the_cli(pytester):
    pytester.makepyfile(mypkg_model="""
        import jax.numpy as jnp
        import numpy as np

        N_LAYERS = 2               # an int: not nudged (it may be a count)
        SCALE = 0.5
        BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float32)

        def smooth(v):
            return jnp.log1p(jnp.exp(v))

        def loss(w):
            out = w
            for _ in range(N_LAYERS):
                out = smooth(SCALE * out + BIAS)
            return jnp.sum(out ** 2)
    """, mypkg_cases="""
        import jax.numpy as jnp
        from jaxworld.testing import scenarios_for
        from mypkg_model import loss

        SCENARIOS = scenarios_for(loss, jnp.array([0.5, -1.0, 2.0]),
                                  operators=["grad", "hessian"], modes=["rev_over_rev"])
    """)
    result = pytester.run(sys.executable, "-m", "jaxworld._cli", "check", "--suite",
                          "mypkg_cases:SCENARIOS", "--mutate", "--no-progress", "--markdown",
                          "m.md")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "--mutate: 3 mutants of the dependencies of 1 functions (* dependencies not mutated)"])
    result.stdout.fnmatch_lines(["  not mutated: *'N_LAYERS'*a number of type int is not nudged*"])
    result.stdout.fnmatch_lines(["*3 passed, 0 failed, 0 errors*"])
    md = (pytester.path / "m.md").read_text()
    assert "| world | 3 | 0 | 0 |" in md
    for name in ("'SCALE'", "'BIAS'", "'smooth'"):
        assert name in md
    assert os.path.exists(pytester.path / "m.md")
