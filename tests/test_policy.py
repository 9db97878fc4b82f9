"""Stale-closure policies: "retrace" (default), "warn", "error", "frozen".

Each is set three ways — globally (`jaxworld.set_policy`), for a block (`with jaxworld.policy`)
and per wrapped function (`wrap(..., policy=...)`) — and checked on a prepared `jax.jit` of a
wrapped function after a global float it reads is rebound and the world advanced. Precedence
(issue #12): block > function > global; every piece of advice in the messages is followed here
and must work, however the policy was set.
"""

from __future__ import annotations

import contextlib
import re
import warnings

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = jnp.array([0.5, -1.0, 2.0])


@pytest.fixture(autouse=True)
def _restore_global_policy():
    before = jaxworld.get_policy()
    yield
    jaxworld.set_policy(before)


def scaled_cube():
    """A fresh namespace whose f reads the global float `a`; (namespace, answer for a)."""
    ns = notebook("""
        a = 2.0
        def f(x):
            return jnp.sum(a * x ** 3)
    """)

    def answer(a):
        return jnp.sum(a * X ** 3)

    return ns, answer


def how(setting: str, policy: str):
    """(context manager to call under, policy for wrap) for one way of setting `policy`."""
    if setting == "global":
        jaxworld.set_policy(policy)
        return contextlib.nullcontext(), None
    if setting == "block":
        return jaxworld.policy(policy), None
    return contextlib.nullcontext(), policy


SETTINGS = pytest.mark.parametrize("setting", ["global", "block", "per-function"])


def prepare(ns, wrap_policy):
    wf = jaxworld.wrap(ns["f"], policy=wrap_policy)
    F = jax.jit(wf)
    return wf, F


@SETTINGS
def test_retrace(setting):
    ns, answer = scaled_cube()
    ctx, wrap_policy = how(setting, "retrace")
    wf, F = prepare(ns, wrap_policy)
    with ctx:
        assert_trees_close(F(X), answer(2.0))
        ns["a"] = 7.0
        jaxworld.advance()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # retrace is silent
            assert_trees_close(F(X), answer(7.0))
    assert jaxworld.stats(wf)["traces"] == 2


@SETTINGS
def test_warn_retraces_and_names_the_change(setting):
    ns, answer = scaled_cube()
    ctx, wrap_policy = how(setting, "warn")
    wf, F = prepare(ns, wrap_policy)
    with ctx:
        assert_trees_close(F(X), answer(2.0))
        ns["a"] = 7.0
        jaxworld.advance()
        with pytest.warns(UserWarning, match=r"re-tracing f at epoch \d+") as caught:
            out = F(X)
    assert_trees_close(out, answer(7.0))
    message = str(caught[0].message)
    assert "global 'a'" in message and "2.0 -> 7.0" in message, message


@SETTINGS
def test_error_raises_naming_the_change(setting):
    ns, answer = scaled_cube()
    ctx, wrap_policy = how(setting, "error")
    wf, F = prepare(ns, wrap_policy)
    with ctx:
        assert_trees_close(F(X), answer(2.0))
        ns["a"] = 7.0
        jaxworld.advance()
        with pytest.raises(jaxworld.StaleClosureError) as caught:
            F(X)
    message = str(caught.value)
    assert "global 'a'" in message and "2.0 -> 7.0" in message, message
    assert re.search(r"f was traced at epoch \d+ and its dependencies changed", message)
    assert "`with jaxworld.policy('retrace'):` around the call" in message  # how to fix it
    assert "`with jaxworld.policy('frozen'):`" in message


@SETTINGS
@pytest.mark.parametrize("advice", ["retrace", "frozen"])
def test_following_the_error_advice_works(setting, advice):
    # "Re-trace on purpose with `with jaxworld.policy('retrace'):` around the call, or keep the
    # old world with `with jaxworld.policy('frozen'):`" — for a global, block or per-function
    # 'error' alike (main: inside the block, a per-function 'error' raised again).
    ns, answer = scaled_cube()
    ctx, wrap_policy = how(setting, "error")
    wf, F = prepare(ns, wrap_policy)
    with ctx:
        assert_trees_close(F(X), answer(2.0))
        ns["a"] = 7.0
        jaxworld.advance()
        with pytest.raises(jaxworld.StaleClosureError):
            F(X)
        with jaxworld.policy(advice):
            got = F(X)
    assert_trees_close(got, answer(7.0 if advice == "retrace" else 2.0))


@SETTINGS
def test_following_the_warning_advice_works(setting):
    # "To re-trace without this warning, call it inside `with jaxworld.policy('retrace'):`."
    ns, answer = scaled_cube()
    ctx, wrap_policy = how(setting, "warn")
    wf, F = prepare(ns, wrap_policy)
    with ctx:
        F(X)
        ns["a"] = 7.0
        jaxworld.advance()
        with jaxworld.policy("retrace"), warnings.catch_warnings():
            warnings.simplefilter("error")
            got = F(X)
    assert_trees_close(got, answer(7.0))
    ns["a"] = 8.0
    jaxworld.advance()
    ctx, _ = how(setting, "warn")  # a context manager is used once
    with ctx, pytest.warns(UserWarning, match=re.escape(
            "call it inside `with jaxworld.policy('retrace'):`")):
        assert_trees_close(F(X), answer(8.0))


@SETTINGS
def test_frozen_keeps_the_old_world(setting):
    ns, answer = scaled_cube()
    ctx, wrap_policy = how(setting, "frozen")
    wf, F = prepare(ns, wrap_policy)
    with ctx:
        assert_trees_close(F(X), answer(2.0))
        ns["a"] = 7.0
        jaxworld.advance()
        assert_trees_close(F(X), answer(2.0))  # like jax.jit: the old world
        assert_trees_close(jax.grad(wf)(X), 3 * 2.0 * X ** 2)
    assert jaxworld.stats(wf)["traces"] == 1


def test_frozen_lasts_until_an_advance_under_another_policy():
    ns, answer = scaled_cube()
    wf, F = prepare(ns, None)
    assert_trees_close(F(X), answer(2.0))
    ns["a"] = 7.0
    jaxworld.advance()
    with jaxworld.policy("frozen"):
        assert_trees_close(F(X), answer(2.0))
    jaxworld.advance()  # the policy is applied again: retrace now
    assert_trees_close(F(X), answer(7.0))


def test_block_wins_over_function_wins_over_global():
    ns, answer = scaled_cube()
    jaxworld.set_policy("error")
    wf_error_global, F1 = prepare(ns, None)
    wf_own, F2 = prepare(ns, "warn")
    F1(X), F2(X)
    ns["a"] = 5.0
    jaxworld.advance()
    with pytest.raises(jaxworld.StaleClosureError, match="global 'a'"):
        F1(X)  # the global policy
    with pytest.warns(UserWarning, match="global 'a'"):
        assert_trees_close(F2(X), answer(5.0))  # the function's own wins over the global one
    ns["a"] = 6.0
    jaxworld.advance()
    with jaxworld.policy("frozen"):  # the block wins over both: each keeps its last trace
        assert_trees_close(F1(X), answer(2.0))  # (its re-trace at a = 5.0 had raised)
        assert_trees_close(F2(X), answer(5.0))
    assert jaxworld.get_policy() == "error"


def test_error_policy_on_a_prepared_operator_names_a_transitive_helper():
    ns = notebook("""
        def h(x):
            return jnp.sin(x)
        def g(x):
            return 2.0 * h(x)
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    H = jaxworld.hessian(jaxworld.wrap(ns["f"], policy="error"))
    H(X)
    notebook("""
        def h(x):
            return jnp.cos(x)
    """, ns)
    jaxworld.advance()
    with pytest.raises(jaxworld.StaleClosureError, match=re.escape("global 'h'")) as caught:
        H(X)
    assert "(read by f -> g)" in str(caught.value)


def test_no_change_never_triggers_the_policy():
    ns, answer = scaled_cube()
    wf, F = prepare(ns, "error")
    F(X)
    ns["unrelated"] = 1.0
    jaxworld.advance()
    assert_trees_close(F(X), answer(2.0))  # no error: the record holds


@pytest.mark.parametrize("api", ["set_policy", "policy", "wrap"])
def test_unknown_policy_is_a_clear_value_error(api):
    expected = ("unknown policy 'sometimes'. Expected one of 'retrace', 'warn', 'error', "
                "'frozen'.")
    with pytest.raises(ValueError, match=re.escape(f"jaxworld.{api}: {expected}")):
        if api == "set_policy":
            jaxworld.set_policy("sometimes")
        elif api == "policy":
            with jaxworld.policy("sometimes"):
                pass
        else:
            jaxworld.wrap(lambda x: x, policy="sometimes")
    assert jaxworld.get_policy() in ("retrace", "warn", "error", "frozen")


def test_block_policy_is_restored_after_the_block():
    jaxworld.set_policy("retrace")
    with jaxworld.policy("frozen"):
        assert jaxworld.get_policy() == "frozen"
        with jaxworld.policy("error"):
            assert jaxworld.get_policy() == "error"
        assert jaxworld.get_policy() == "frozen"
    assert jaxworld.get_policy() == "retrace"


def test_frozen_global_policy_costs_no_retrace_on_later_advances():
    ns, answer = scaled_cube()
    jaxworld.set_policy("frozen")
    wf = jaxworld.wrap(ns["f"])
    outer_traces = []

    @jax.jit
    def F(x):
        outer_traces.append(1)
        return wf(x)

    F(X)
    ns["a"] = 7.0
    jaxworld.advance()  # a real change: every jax.jit re-traces once
    assert_trees_close(F(X), answer(2.0))
    assert len(outer_traces) == 2
    for _ in range(3):  # still frozen: later advances change nothing
        jaxworld.advance()
        assert_trees_close(F(X), answer(2.0))
    assert len(outer_traces) == 2
    assert jaxworld.stats(wf)["traces"] == 1
