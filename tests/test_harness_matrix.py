"""One-line matrices (`scenarios_for`) and scenario modifiers (issue #15, items 1 and 2)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld
from jaxworld.testing import (
    OPERATORS,
    Scenario,
    batchify,
    builtin_suite,
    check,
    closurify,
    constantify,
    jitify,
    scenarios_for,
    x64ify,
)
from jaxworld.testing import _builtin as builtin

X = jnp.linspace(0.1, 1.0, 4)


def cubic_sin(x):
    return jnp.sum(jnp.sin(x) * x ** 2)


def test_matrix_has_every_operator_mode_and_via():
    cases = scenarios_for(cubic_sin, X)
    assert cases.skipped == []
    pairs = {(c.operator, c.via) for c in cases}
    families = [op for op in OPERATORS if op not in ("hessian", "third_order")]
    expected = {(op, via) for op in families for via in ("operator", "wrap")}
    expected |= {(f"hessian:{m}", via) for m in jaxworld.HESSIAN_MODES
                 for via in ("operator", "wrap")}
    expected.add(("third_order", "operator"))  # one via: it is jax.jacfwd of jaxworld.hessian
    assert pairs == expected and len(cases) == len(expected) == 23
    assert "cubic_sin via wrap: hessian:rev_over_fwd" in [c.name for c in cases]
    report = check(cases)
    assert report.ok, report.table()


def test_matrix_selects_operators_modes_vias_and_tags():
    cases = scenarios_for(cubic_sin, X, operators=["grad", "hessian"], modes=["rev_over_rev"],
                          vias=["wrap"], tags="mine", name="c")
    assert [(c.name, c.tags) for c in cases] == [
        ("c via wrap: grad", ("mine",)), ("c via wrap: hessian:rev_over_rev", ("mine",))]
    with pytest.raises(ValueError, match=re.escape("unknown Hessian mode 'sideways'")):
        scenarios_for(cubic_sin, X, modes=["sideways"])
    with pytest.raises(ValueError, match=re.escape("vias must be a non-empty subset of")):
        scenarios_for(cubic_sin, X, vias=["jit"])
    with pytest.raises(TypeError, match=re.escape("fn must be callable, got int")):
        scenarios_for(3, X)


def test_matrix_skips_what_does_not_apply_with_the_reason():
    vector = scenarios_for(jnp.sin, X, vias=["operator"])
    assert [c.operator for c in vector] == ["value", "jvp", "vjp", "jacfwd", "jacrev"]
    assert {s.operator: s.reason for s in vector.skipped}["grad"] == \
        "the output is not a real scalar"
    two = scenarios_for(lambda x, y: jnp.sum(x * y), X, X, vias=["operator"],
                        operators=["hvp", "grad"])
    assert [c.operator for c in two] == ["grad"]
    assert two.skipped[0].reason == "'hvp' is for functions of one argument (2 non-static)"
    ints = scenarios_for(lambda n: n * 2, jnp.arange(3), vias=["operator"])
    assert [c.operator for c in ints] == ["value"]


def test_matrix_names_plain_jax_limitations_and_can_expect_them():
    skipped = scenarios_for(builtin.while_loss, X, vias=["operator"],
                            operators=["jvp", "grad", "hessian"], modes=["fwd_over_rev"])
    assert [c.operator for c in skipped] == ["jvp"]
    limitation = ("JAX cannot differentiate lax.while_loop / fori_loop with dynamic bounds in "
                  "reverse mode")
    assert [(s.operator, s.reason) for s in skipped.skipped] == [
        ("grad", limitation), ("hessian:fwd_over_rev", limitation)]
    custom = scenarios_for(builtin.custom_vjp_loss, X, vias=["operator"], operators=["jvp"])
    assert custom == [] and custom.skipped[0].reason == (
        "JAX cannot apply forward mode to a custom_vjp function (jax #16049)")

    expected = scenarios_for(builtin.while_loss, X, vias=["operator"], operators=["grad"],
                             expect_errors=True)
    assert expected[0].expect_error is ValueError
    assert expected[0].name == f"while_loss: grad ({limitation}; expects its ValueError)"
    report = check(expected)
    assert report.ok and "raised ValueError like plain JAX" in report.rows[0].message


def test_matrix_with_static_and_complex_arguments():
    static = scenarios_for(builtin.power_static, X, 3, static_argnums=(1,),
                           operators=["grad", "hvp"], vias=["operator"])
    assert [c.static_argnums for c in static] == [(1,), (1,)]
    z = jnp.asarray([0.3 + 0.2j, -0.5 + 0.4j], jnp.complex64)
    holo = scenarios_for(builtin.complex_sin, z, operators=["grad"], vias=["operator"])
    assert holo[0].holomorphic
    report = check(static + holo)
    assert report.ok, report.table()


# -- modifiers --------------------------------------------------------------------------------

MLP = builtin._inputs()


def test_each_modifier_derives_a_variant_that_passes():
    mlp = Scenario(builtin.mlp_loss, (MLP["mlp"], MLP["inputs"], MLP["targets"]), "grad",
                   name="mlp grad")
    quad = Scenario(builtin.quadratic, (X[:3],), "grad", name="quadratic grad",
                    reference=lambda x: builtin._Q @ np.asarray(x) + builtin._B)
    sin_jvp = Scenario(cubic_sin, (X,), "jvp", name="cubic_sin jvp")
    variants = [closurify(mlp), constantify(quad), constantify(sin_jvp), batchify(quad),
                batchify(sin_jvp), jitify(Scenario(cubic_sin, (X,), "hvp", name="hvp")),
                x64ify(Scenario(cubic_sin, (X,), "hessian", name="hessian"))]
    assert [v.name for v in variants] == [
        "mlp grad [closurify]", "quadratic grad [constantify]", "cubic_sin jvp [constantify]",
        "quadratic grad [batchify]", "cubic_sin jvp [batchify]", "hvp [jitify]",
        "hessian [x64ify]"]
    report = check(variants)
    assert report.ok, report.table()
    rows = {r.name: r for r in report.rows}
    assert rows["quadratic grad [constantify]"].comparisons["analytic"].ok  # scaled reference
    assert rows["quadratic grad [batchify]"].comparisons["analytic"].ok  # stacked reference
    assert rows["hessian [x64ify]"].comparisons["jax"].rtol == 1e-10  # held to float64
    assert not jax.config.jax_enable_x64  # x64ify is scoped to its case


def test_modifiers_change_what_they_say():
    base = Scenario(builtin.mlp_loss, (MLP["mlp"], MLP["inputs"], MLP["targets"]), "hessian")
    closed = closurify(base)
    assert len(closed.args) == 1 and "closurify" in closed.tags
    np.testing.assert_allclose(closed.fun(MLP["mlp"]), base.fun(*base.args))
    const = constantify(base)
    assert len(const.args) == 4 and float(const.args[-1]) == 1.5
    np.testing.assert_allclose(const.fun(*const.args), 1.5 * base.fun(*base.args), rtol=1e-6)
    batched = batchify(Scenario(cubic_sin, (X,), "grad"), size=4)
    assert batched.batched and batched.args[0].shape == (4, 4)
    assert len({float(row[1]) for row in batched.args[0]}) == 4  # four different points
    wide = x64ify(Scenario(cubic_sin, (X,), "grad"))
    assert wide.x64 is True and wide.args[0].dtype == np.float64
    assert x64ify(wide).args[0].dtype == np.float32 and x64ify(wide).x64 is False
    assert jitify(base).outer_jit


def test_a_modifier_that_does_not_apply_says_why():
    one = Scenario(cubic_sin, (X,), "grad")
    with pytest.raises(ValueError, match=re.escape("has one argument; there is nothing to "
                                                   "capture")):
        closurify(one)
    with pytest.raises(ValueError, match=re.escape("'hvp' is for functions of one argument")):
        constantify(Scenario(cubic_sin, (X,), "hvp"))
    with pytest.raises(ValueError, match=re.escape("is already batched")):
        batchify(batchify(one))
    with pytest.raises(ValueError, match=re.escape("already runs under an outer jax.jit")):
        jitify(jitify(one))
    with pytest.raises(TypeError, match=re.escape("expected a jaxworld.testing.Scenario")):
        closurify("grad")


def test_a_batched_case_fails_when_one_element_is_wrong():
    # The stacked reference is per element: a wrong analytic answer for one element fails.
    def reference(x):
        g = 3 * np.asarray(x) ** 2
        return g + (0.5 if float(x[0]) > 0.105 else 0.0)  # wrong for the 1.1x element only

    row = check([batchify(Scenario(lambda x: jnp.sum(x ** 3), (X,), "grad",
                                   reference=reference))]).rows[0]
    assert row.status == "fail" and not row.comparisons["analytic"].ok
    assert row.comparisons["jax"].ok and row.comparisons["fd"].ok


def test_builtin_suite_grows_through_the_matrix_and_modifiers():
    suite = builtin_suite()
    names = [c.name for c in suite]
    assert len(names) == len(set(names)) == 164
    sin_sq = [c for c in suite if c.name.startswith("sin_sq") and "[" not in c.name]
    assert len(sin_sq) == 23  # the whole matrix
    for modifier in ("closurify", "constantify", "batchify", "jitify", "x64ify"):
        assert sum(modifier in c.tags for c in suite) >= 3, modifier
