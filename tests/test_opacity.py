"""Opacity and the derivation cache: a wrapped call is one `world_call` equation, its derivatives
to any order are `world_call`s on derived closures (never the function's own primitives), the
derivations are cached, and each rule of the primitive really runs (issue #2)."""

import re

import jax
import jax.extend.core
import jax.numpy as jnp
import pytest
from jax import lax

import jaxworld

from .helpers import CASES, assert_trees_close, primitive_names, vector

# Primitives of `f` and of its derivatives; none may appear outside the closures.
OWN_PRIMITIVES = {"sin", "cos", "exp", "integer_pow", "mul", "reduce_sum", "neg", "pow"}


def f(x):
    return jnp.sum(jnp.sin(x) ** 2 * jnp.exp(x))


def _all_eqns(jaxpr):
    """Every equation at every level outside world_call closures."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _all_eqns(sub)


def _closures(jaxpr):
    return [e.params["closure"] for e in _all_eqns(jaxpr) if e.primitive.name == "world_call"]


def _derivation_kinds(jaxpr) -> set[str]:
    """Transformation names on the derivation chains of every closure in `jaxpr`."""
    kinds = set()
    for closure in _closures(jaxpr):
        while closure.derivation is not None:
            d = closure.derivation
            kinds.add(d.transformation + (f".{d.part}" if d.part else ""))
            closure = d.parent
    return kinds


@pytest.mark.parametrize("case", CASES, ids=str)
def test_wrapped_call_is_exactly_one_world_call(case, x64):
    wf = case.wrap()
    args = case.args()
    jaxpr = jax.make_jaxpr(wf, static_argnums=case.static_argnums)(*args)
    assert primitive_names(jaxpr) == ["world_call"]
    closure = jaxpr.eqns[0].params["closure"]
    assert isinstance(closure, jaxworld.OpaqueClosure)
    assert closure.origin is case.fun and closure.derivation is None
    assert closure.epoch == jaxworld.epoch()
    assert list(closure.out_avals) == [v.aval for v in jaxpr.jaxpr.outvars]


@pytest.mark.parametrize("order", [2, 3])
def test_derivatives_are_world_calls_only(order, x64):
    wf = jaxworld.wrap(f)
    x = vector(3)
    plain_jaxpr = jax.make_jaxpr(jax.hessian(f))(x)
    assert OWN_PRIMITIVES & set(primitive_names(plain_jaxpr))  # the oracle does show them
    derivative = jax.hessian(wf) if order == 2 else jax.jacfwd(jax.hessian(wf))
    jaxpr = jax.make_jaxpr(derivative)(x)
    names = {e.primitive.name for e in _all_eqns(jaxpr)}
    assert "world_call" in names
    assert not names & OWN_PRIMITIVES, names & OWN_PRIMITIVES
    # All the work on the input is done by world_calls: every equation reading x is one.
    x_var = jaxpr.jaxpr.invars[0]
    readers = [e.primitive.name for e in jaxpr.eqns if x_var in e.invars]
    assert readers and set(readers) == {"world_call"}
    # Every closure is derived (to `order` levels at least) from the root traced from f.
    for closure in _closures(jaxpr):
        root = closure
        while root.derivation is not None:
            root = root.derivation.parent
        assert closure.origin is f and root.origin is f
    assert max(_depth(c) for c in _closures(jaxpr)) >= order


def _depth(closure):
    depth = 0
    while closure.derivation is not None:
        depth, closure = depth + 1, closure.derivation.parent
    return depth


def test_second_hessian_derives_traces_and_compiles_nothing():
    wf = jaxworld.wrap(f)
    x = vector(3)
    first = jax.hessian(wf)(x)  # eagerly: every derived closure is compiled once (impl rule)
    after_first = jaxworld.stats(wf)
    assert after_first["traces"] == 1
    assert after_first["derivations"] > 0 and after_first["compilations"] > 0
    jaxworld.reset_stats()
    second = jax.hessian(wf)(x + 0.5)
    assert jaxworld.stats(wf) == dict.fromkeys(after_first, 0)
    assert jaxworld.stats() == dict.fromkeys(after_first, 0)
    assert_trees_close(first, jax.hessian(f)(x))
    assert_trees_close(second, jax.hessian(f)(x + 0.5))
    # Traced again (a new outer trace, as a new jax.jit would): still nothing new.
    jax.make_jaxpr(jax.hessian(wf))(x)
    assert jaxworld.stats(wf)["traces"] == 0 and jaxworld.stats(wf)["derivations"] == 0
    # A new input signature is a new trace.
    jax.make_jaxpr(jax.hessian(wf))(vector(4))
    assert jaxworld.stats(wf)["traces"] == 1


def test_printed_jaxpr_shows_origin_name_and_epoch_not_an_address():
    def my_energy(x):
        return jnp.sum(jnp.cos(x) * x)

    wf = jaxworld.wrap(my_energy)
    e = jaxworld.epoch()
    text = str(jax.make_jaxpr(wf)(vector()))
    assert f"closure=test_printed_jaxpr_shows_origin_name_and_epoch_not_an_address.<locals>." \
        f"my_energy@epoch{e}" in text, text
    assert not re.search(r"0x[0-9a-fA-F]{6,}", text), text
    # Derived closures name their derivation around the origin's name.
    text = str(jax.make_jaxpr(jax.hessian(wf))(vector()))
    assert not re.search(r"0x[0-9a-fA-F]{6,}", text), text
    assert re.search(rf"closure=vmap\(jvp\(linearize\.primal\(\S*my_energy\)\)\)@epoch{e}",
                     text), text
    assert re.search(rf"closure=\S*transpose\(linearize\.tangent\(\S*my_energy\)\)+@epoch{e}",
                     text), text
    assert repr(_closures(jax.make_jaxpr(wf)(vector()))[0]) == \
        f"<OpaqueClosure test_printed_jaxpr_shows_origin_name_and_epoch_not_an_address." \
        f"<locals>.my_energy epoch={e} (f32[4]) -> (f32[])>"


def _all_world_calls(jaxpr):
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "world_call":
            yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _all_world_calls(sub)


def _in_scan(h):
    return lambda x: lax.scan(lambda c, xi: (c + h(xi * c), h(xi)), 0.0, x)[0]


def test_each_rule_of_the_primitive_runs():
    """The jvp, linearize, transpose, batching, partial-eval, remat (partial_eval_custom) and DCE
    rules each leave their derivation in some closure's `.derivation` chain."""
    wf = jaxworld.wrap(f)
    x = vector(3)
    seen = set()
    seen |= _derivation_kinds(jax.make_jaxpr(jax.hessian(wf))(x))
    assert {"jvp", "linearize.primal", "linearize.tangent", "transpose", "vmap"} <= seen, seen
    remat = _derivation_kinds(jax.make_jaxpr(jax.grad(jax.checkpoint(wf)))(x))
    assert any(k.startswith("partial_eval_custom") for k in remat), remat
    assert "dce" in remat, remat
    linearized = jax.make_jaxpr(lambda x: jax.linearize(_in_scan(wf), x))(x)
    scan = _derivation_kinds(linearized)
    assert "partial_eval.unknown" in scan, scan
    # The known half had nothing to compute here: no empty `world_call` is left behind.
    empty = [e for e in _all_world_calls(linearized.jaxpr) if not e.invars and not e.outvars]
    assert not empty, empty
    # Each of those transformations gives plain JAX's numbers.
    assert_trees_close(jax.jit(jax.grad(jax.checkpoint(wf)))(x), jax.jit(jax.grad(f))(x))
    assert_trees_close(jax.jit(jax.grad(_in_scan(wf)))(x), jax.jit(jax.grad(_in_scan(f)))(x))


def test_impl_and_lowering_rules_run():
    wf = jaxworld.wrap(f)
    x = vector(3)
    assert_trees_close(wf(x), f(x))  # impl: a compiled executable cached on the closure
    assert jaxworld.stats(wf)["compilations"] == 1
    wf(x)
    assert jaxworld.stats(wf)["compilations"] == 1
    # Lowering: plain StableHLO (f's own operations), no host callbacks or custom calls, for the
    # call and for its derivatives.
    for fn in (wf, jax.hessian(wf)):
        hlo = jax.jit(fn).lower(x).as_text()
        assert "stablehlo.sine" in hlo
        assert "callback" not in hlo.lower() and "custom_call" not in hlo, hlo


def test_derived_closure_attributes():
    wf = jaxworld.wrap(f)
    jaxpr = jax.make_jaxpr(jax.grad(wf))(vector(3))
    for closure in _closures(jaxpr):
        d = closure.derivation
        assert isinstance(d, jaxworld.Derivation)
        assert d.transformation in {"linearize", "transpose"}
        assert isinstance(d.parent, jaxworld.OpaqueClosure)
        assert closure.origin is f and closure.epoch == jaxworld.epoch()
        assert isinstance(closure.jaxpr, jax.extend.core.ClosedJaxpr)
        assert closure.jaxpr.in_avals == list(closure.in_avals)
        with pytest.raises(AttributeError):
            closure.origin = None
