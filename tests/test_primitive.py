"""Each rule of `world_call` runs where it must, and gives plain JAX's answer (issue #16 item 2).

Like equinox's `test/test_primitive.py`: every table entry the registration block of
`jaxworld/_primitive.py` fills is replaced, for one test, by a wrapper that counts its calls and
then calls the real rule; the test runs the transformation that needs the rule on a freshly
wrapped function (so no derivation or JAX cache answers instead), asserts the rule ran, checks
what it left in the jaxpr, and compares the result with plain JAX traced fresh.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld
from jaxworld import _primitive
from jaxworld._compat import (
    JaxprTypeError,
    check_jaxpr,
    custom_partial_eval_rules,
    custom_typechecks,
    dce_jaxpr,
    dce_rules,
    eval_jaxpr,
    fancy_primitive_batchers,
    fancy_transposes,
    lowering_rules,
    partial_eval_jaxpr_custom_rules,
    partial_eval_jaxpr_nounits,
    primitive_jvps,
    primitive_linearizations,
)
from jaxworld._primitive import world_call_p

X = jnp.array([0.3, -1.2, 2.0])
Y = jnp.array([1.5, 0.5, -0.25])


def body(x, y):
    return jnp.sin(x) * y + x ** 2, jnp.cos(y) * x


def fresh():
    """A new wrapped function (no derivation cached on it) and plain JAX's own, traced fresh."""
    return jaxworld.wrap(lambda x, y: body(x, y)), (lambda x, y: body(x, y))


def close(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6, atol=1e-6)


@pytest.fixture
def calls(monkeypatch):
    """`calls[name]`: how often the rule registered under `name` ran during the test."""
    counts: collections.Counter[str] = collections.Counter()

    def counting(name, rule):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return rule(*args, **kwargs)
        return wrapper

    tables = {
        "jvp": primitive_jvps, "linearize": primitive_linearizations,
        "transpose": fancy_transposes, "vmap": fancy_primitive_batchers,
        "dce": dce_rules, "partial_eval": custom_partial_eval_rules,
        "partial_eval_custom": partial_eval_jaxpr_custom_rules,
        "typecheck": custom_typechecks,
    }
    for name, table in tables.items():
        monkeypatch.setitem(table, world_call_p, counting(name, table[world_call_p]))
    monkeypatch.setattr(world_call_p, "impl", counting("impl", world_call_p.impl))
    monkeypatch.setattr(world_call_p, "abstract_eval",
                        counting("abstract_eval", world_call_p.abstract_eval))
    entry = lowering_rules[world_call_p]
    monkeypatch.setitem(lowering_rules, world_call_p,
                        type(entry)(counting("lowering", entry.rule), entry.inline))
    for name, deriver in list(_primitive.DERIVERS.items()):
        monkeypatch.setitem(_primitive.DERIVERS, name, counting(f"derive:{name}", deriver))
    return counts


def closures_in(jaxpr) -> list:
    return [e.params["closure"] for e in jaxpr.eqns if e.primitive is world_call_p]


def test_every_table_is_filled_by_the_registration_block():
    assert world_call_p.multiple_results
    for table in (primitive_jvps, primitive_linearizations, fancy_transposes,
                  fancy_primitive_batchers, dce_rules, custom_partial_eval_rules,
                  partial_eval_jaxpr_custom_rules, custom_typechecks, lowering_rules):
        assert world_call_p in table
    assert set(_primitive.DERIVERS) == {"jvp", "linearize", "transpose", "vmap", "dce",
                                        "partial_eval", "partial_eval_custom"}


def test_abstract_eval_and_impl(calls):
    f, plain = fresh()
    jaxpr = jax.make_jaxpr(f)(X, Y)
    assert calls["abstract_eval"] >= 1
    (closure,) = closures_in(jaxpr.jaxpr)
    assert [a.shape for a in jaxpr.out_avals] == [(3,), (3,)]
    out = closure(X, Y)  # an eager bind outside every transformation: the impl rule
    assert calls["impl"] == 1
    close(out, jax.jit(lambda x, y: plain(x, y))(X, Y))


def test_jvp(calls):
    f, plain = fresh()
    got = jax.jvp(f, (X, Y), (Y, X))
    assert calls["jvp"] >= 1 and calls["derive:jvp"] == 1
    close(got, jax.jit(lambda x, y, tx, ty: jax.jvp(plain, (x, y), (tx, ty)))(X, Y, Y, X))
    derived = closures_in(jax.make_jaxpr(lambda x, y: jax.jvp(f, (x, y), (y, x)))(X, Y).jaxpr)
    assert [c.derivation.transformation for c in derived] == ["jvp"]


def test_linearize_and_transpose(calls):
    f, plain = fresh()

    def loss(g):
        return lambda x, y: jnp.sum(g(x, y)[0] * g(x, y)[1])

    got = jax.grad(loss(f), argnums=(0, 1))(X, Y)
    assert calls["linearize"] >= 1 and calls["derive:linearize"] >= 1
    assert calls["transpose"] >= 1 and calls["derive:transpose"] >= 1
    close(got, jax.jit(lambda x, y: jax.grad(loss(plain), argnums=(0, 1))(x, y))(X, Y))
    jaxpr = jax.make_jaxpr(jax.grad(loss(f)))(X, Y)
    kinds = {c.derivation.transformation for c in closures_in(jaxpr.jaxpr) if c.derivation}
    assert kinds == {"linearize", "transpose"}
    assert not any(e.primitive.name == "sin" for e in jaxpr.jaxpr.eqns)  # opaque to any order


def test_vmap(calls):
    f, plain = fresh()
    xs = jnp.stack([X, 2 * X])
    got = jax.vmap(f, in_axes=(0, None))(xs, Y)
    assert calls["vmap"] >= 1 and calls["derive:vmap"] == 1
    close(got, jax.jit(lambda a, b: jax.vmap(plain, in_axes=(0, None))(a, b))(xs, Y))
    # The rule reports exactly which outputs are batched: an output of the unbatched `y` alone
    # stays unbatched, so `out_axes=None` accepts it (JAX raises for a batched one).
    g = jaxworld.wrap(lambda x, y: (x * 2.0, jnp.cos(y)))
    outs = jax.vmap(g, in_axes=(0, None), out_axes=(0, None))(xs, Y)
    close(outs, (xs * 2.0, jnp.cos(Y)))


def test_dce_prunes_unused_outputs_and_inputs(calls):
    f, plain = fresh()
    g = jaxworld.wrap(lambda x, y: (jnp.sin(x), jnp.cos(y)))
    jaxpr = jax.make_jaxpr(lambda x, y: g(x, y)[0])(X, Y)
    dced, used_inputs = dce_jaxpr(jaxpr.jaxpr, [True])
    assert calls["dce"] == 1 and calls["derive:dce"] == 1
    assert used_inputs == [True, False]
    (closure,) = closures_in(dced)
    assert closure.derivation.transformation == "dce"
    assert len(closure.in_avals) == 1 and len(closure.out_avals) == 1
    close(eval_jaxpr(dced, jaxpr.consts, X), jnp.sin(X))
    # Nothing used and no effects: the equation is dropped without a derivation.
    empty, used = dce_jaxpr(jaxpr.jaxpr, [False])
    assert not closures_in(empty) and used == [False, False]
    # Everything used: the equation is kept as it is.
    full_jaxpr = jax.make_jaxpr(f)(X, Y)
    kept, used = dce_jaxpr(full_jaxpr.jaxpr, [True, True])
    assert closures_in(kept) == closures_in(full_jaxpr.jaxpr) and used == [True, True]
    close(eval_jaxpr(kept, full_jaxpr.consts, X, Y), jax.jit(plain)(X, Y))


def test_partial_eval_splits_known_and_unknown(calls):
    f, plain = fresh()
    jaxpr = jax.make_jaxpr(f)(X, Y)
    known, unknown, out_unknowns, res_avals = partial_eval_jaxpr_nounits(
        jaxpr, [False, True], instantiate=False)
    assert calls["partial_eval"] >= 1 and calls["derive:partial_eval"] == 1
    assert out_unknowns == [True, True]
    parts = {c.derivation.part for c in closures_in(known.jaxpr) + closures_in(unknown.jaxpr)}
    assert parts <= {"known", "unknown"} and "unknown" in parts
    residuals = eval_jaxpr(known.jaxpr, known.consts, X)
    got = eval_jaxpr(unknown.jaxpr, unknown.consts, *residuals, Y)
    close(got, jax.jit(lambda x, y: plain(x, y))(X, Y))


def test_partial_eval_custom_under_checkpoint(calls):
    f, plain = fresh()

    def loss(g):
        return jax.checkpoint(lambda x, y: jnp.sum(g(x, y)[0] ** 2 + g(x, y)[1]))

    got = jax.grad(loss(f))(X, Y)
    assert calls["partial_eval_custom"] >= 1 and calls["derive:partial_eval_custom"] >= 1
    close(got, jax.jit(lambda x, y: jax.grad(loss(plain))(x, y))(X, Y))


def test_lowering_inlines_the_closure(calls):
    f, plain = fresh()
    lowered = jax.jit(f).lower(X, Y)
    assert calls["lowering"] >= 1
    text = lowered.as_text()
    # Inlined: the closure's body is in `main`, with no call to a private function and no host
    # callback.
    assert "stablehlo.sine" in text and text.count("func.func") == 1
    assert "call @" not in text and "custom_call" not in text
    close(lowered.compile()(X, Y), jax.jit(lambda x, y: plain(x, y))(X, Y))


def test_typecheck_accepts_jaxworld_jaxprs_and_rejects_a_wrong_input(calls):
    f, _ = fresh()
    jaxpr = jax.make_jaxpr(jax.grad(lambda x, y: jnp.sum(f(x, y)[0])))(X, Y)
    check_jaxpr(jaxpr.jaxpr)
    assert calls["typecheck"] >= 2  # the primal world_call and the transposed one, at least
    # An equation whose inputs do not match its closure's signature is a type error.
    g = jaxworld.wrap(lambda x: jnp.sin(x))
    small = jax.make_jaxpr(g)(jnp.ones(2))
    eqn = small.jaxpr.eqns[0]
    other = closures_in(jax.make_jaxpr(g)(jnp.ones(3)).jaxpr)[0]
    bad = small.jaxpr.replace(eqns=[eqn.replace(params={"closure": other})])
    with pytest.raises(JaxprTypeError, match=r"input 0 must be f32\[3\], got f32\[2\]"):
        check_jaxpr(bad)


def test_checks_mode_runs_the_typecheck(calls):
    f, plain = fresh()
    with jax.enable_checks(True):
        got = jax.jit(jax.hessian(lambda x: jnp.sum(f(x, Y)[0])))(X)
    assert calls["typecheck"] >= 1
    close(got, jax.jit(lambda x: jax.hessian(lambda v: jnp.sum(plain(v, Y)[0]))(x))(X))
