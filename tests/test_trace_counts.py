"""Re-tracing is a tested regression: what an advance costs, counted with `jaxworld.stats`.

- a no-op advance, or a change to a global the function never reads: 0 traces, and a plain
  `jax.jit(jax.hessian(wrap(f)))` neither re-traces nor re-compiles (a Python counter inside the
  outer function counts its traces; `_cache_size` of the jitted function counts compilations);
- one of two helpers changes: only the function that depends on it is re-traced;
- steady state: 0 traces, derivations and compilations per call.
"""

from __future__ import annotations

import gc

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = jnp.array([0.2, -0.9, 1.4])


def two_functions():
    return notebook("""
        unrelated = 1.0
        def g1(x):
            return jnp.sin(x)
        def g2(x):
            return jnp.cos(x)
        def f1(x):
            return jnp.sum(g1(x) ** 2)
        def f2(x):
            return jnp.sum(g2(x) ** 3)
    """)


def plain_jit_hessian(wrapped):
    """`jax.jit(jax.hessian(wrapped))` whose outer function counts its own traces."""
    outer_traces = []

    def outer(x):
        outer_traces.append(1)
        return jax.hessian(wrapped)(x)

    return jax.jit(outer), outer_traces


@pytest.fixture
def prepared():
    # Functions wrapped by earlier tests may still be alive, with dependencies those tests
    # changed after their last advance: such a change is found by the next advance and makes
    # every jax.jit in the process re-trace once (the user context is global). Absorb it here,
    # so the counts below see only this test's worlds.
    gc.collect()
    jaxworld.advance()
    ns = two_functions()
    w1 = jaxworld.wrap(ns["f1"])
    H1 = jaxworld.hessian(w1)
    P1, outer_traces = plain_jit_hessian(w1)
    H1(X), P1(X)
    return ns, w1, H1, P1, outer_traces


def fresh_hessian(ns, name):
    return jax.jit(jax.hessian(lambda x: ns[name](x)))(X)


def test_first_call_traces_once(prepared):
    ns, w1, H1, P1, outer_traces = prepared
    assert jaxworld.stats(w1)["traces"] == 1  # one signature, shared by both preparations
    assert len(outer_traces) == 1


def test_no_op_advance_traces_and_compiles_nothing(prepared):
    ns, w1, H1, P1, outer_traces = prepared
    compiled = P1._cache_size()
    jaxworld.reset_stats()
    for _ in range(3):
        jaxworld.advance()
        H1(X), P1(X)
    stats = jaxworld.stats()
    assert stats["traces"] == 0 and stats["derivations"] == 0 and stats["compilations"] == 0
    assert jaxworld.stats(w1)["restamps"] >= 1  # the record was checked and held
    assert len(outer_traces) == 1  # jax.jit did not re-trace...
    assert P1._cache_size() == compiled  # ...nor compile again


def test_unrelated_change_traces_and_compiles_nothing(prepared):
    ns, w1, H1, P1, outer_traces = prepared
    compiled = P1._cache_size()
    jaxworld.reset_stats()
    notebook("""
        unrelated = 2.0
        def another(x):
            return x + 1
        def g2(x):
            return jnp.tanh(x)   # f1 does not call g2
    """, ns)
    jaxworld.advance()
    assert_trees_close(H1(X), fresh_hessian(ns, "f1"))
    assert_trees_close(P1(X), fresh_hessian(ns, "f1"))
    assert jaxworld.stats()["traces"] == 0
    assert len(outer_traces) == 1
    assert P1._cache_size() == compiled


def test_relevant_change_retraces_once_everywhere(prepared):
    ns, w1, H1, P1, outer_traces = prepared
    jaxworld.reset_stats()
    notebook("""
        def g1(x):
            return 2.0 * jnp.cos(x)
    """, ns)
    jaxworld.advance()
    for _ in range(3):
        assert_trees_close(H1(X), fresh_hessian(ns, "f1"))
        assert_trees_close(P1(X), fresh_hessian(ns, "f1"))
    assert jaxworld.stats(w1)["traces"] == 1
    assert len(outer_traces) == 2  # one re-trace of the plain jax.jit, then its cache again


def test_only_the_dependent_function_is_retraced():
    ns = two_functions()
    w1, w2 = jaxworld.wrap(ns["f1"]), jaxworld.wrap(ns["f2"])
    H1, H2 = jaxworld.hessian(w1), jaxworld.hessian(w2)
    P2, outer_traces_2 = plain_jit_hessian(w2)
    H1(X), H2(X), P2(X)
    jaxworld.reset_stats()
    notebook("""
        def g1(x):
            return jnp.exp(x / 3)
    """, ns)
    jaxworld.advance()
    assert_trees_close(H1(X), fresh_hessian(ns, "f1"))
    assert_trees_close(H2(X), fresh_hessian(ns, "f2"))
    assert_trees_close(P2(X), fresh_hessian(ns, "f2"))
    assert jaxworld.stats(w1)["traces"] == 1
    assert jaxworld.stats(w2)["traces"] == 0
    assert jaxworld.stats(w2)["restamps"] == 1
    assert jaxworld.stats()["traces"] == 1
    # Scoped invalidation (issue #13): P2's jax.jit holds only f2's closure, which held, so it is
    # neither re-traced nor re-compiled; no `jax.jit` was invalidated globally.
    assert len(outer_traces_2) == 1
    assert jaxworld.stats()["global_invalidations"] == 0
    assert jaxworld.stats()["scoped_invalidations"] == 1


def test_only_the_dependent_wrapped_helper_is_retraced():
    ns = notebook("""
        def g1(x):
            return jnp.sin(x)
        def g2(x):
            return jnp.cos(x)
        @jaxworld.wrap
        def h1(x):
            return g1(x) * x
        @jaxworld.wrap
        def h2(x):
            return g2(x) * x
        def f(x):
            return jnp.sum(h1(x) * h2(x))
    """, {"jnp": jnp, "jaxworld": jaxworld})
    w_g1, w_g2 = ns["h1"], ns["h2"]
    w = jaxworld.wrap(ns["f"])
    H = jaxworld.hessian(w)
    H(X)
    jaxworld.reset_stats()
    notebook("""
        def g2(x):
            return jnp.cos(3.0 * x)
    """, ns)
    jaxworld.advance()
    assert_trees_close(H(X), fresh_hessian(ns, "f"))
    assert jaxworld.stats(w_g1)["traces"] == 0
    assert jaxworld.stats(w_g2)["traces"] == 1
    assert jaxworld.stats(w)["traces"] == 1  # its trace embedded g2's old closure


@pytest.mark.parametrize("operator", ["grad", "hessian", "hvp", "jit"])
def test_steady_state_traces_nothing(operator):
    ns = two_functions()
    op = getattr(jaxworld, operator)(ns["f1"])
    args = (X, X) if operator == "hvp" else (X,)
    first = op(*args)
    jaxworld.reset_stats()
    for _ in range(20):
        out = op(*args)
    assert_trees_close(out, first)
    assert jaxworld.stats() == {"traces": 0, "derivations": 0, "compilations": 0,
                                "validations": 0, "restamps": 0, "scoped_invalidations": 0,
                                "global_invalidations": 0}


def test_steady_state_of_plain_jit_on_wrapped_traces_nothing(prepared):
    ns, w1, H1, P1, outer_traces = prepared
    jaxworld.reset_stats()
    for _ in range(20):
        P1(X)
    assert jaxworld.stats()["traces"] == 0
    assert len(outer_traces) == 1


# Library state the first trace itself changes: a logger's level cache (filled by the first call
# at a level), a wrapped helper's entries (made by its first call). Followed as library state,
# either would look changed after the trace and make it run again (session 12).
FILLS_A_LIBRARY_CACHE = {
    "a logger": """
        import logging, uuid
        log = logging.getLogger("jaxworld.tests.trace_counts." + uuid.uuid4().hex)
        def f(x):
            log.debug("tracing f")
            return jnp.sum(jnp.sin(x) ** 2)
    """,
    "a wrapped helper": """
        @jaxworld.wrap
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2)
    """,
}


@pytest.mark.parametrize("source", FILLS_A_LIBRARY_CACHE.values(), ids=FILLS_A_LIBRARY_CACHE)
def test_a_first_trace_that_fills_a_library_cache_runs_once(source):
    ns = notebook(source, {"jax": jax, "jnp": jnp, "jaxworld": jaxworld})
    w = jaxworld.wrap(ns["f"])
    H = jax.jit(jax.hessian(w))
    assert_trees_close(H(X), jax.hessian(ns["f"])(X))
    assert jaxworld.stats(w)["traces"] == 1
    if "log" in ns:
        ns["log"].info("a new level, after the trace")
    jaxworld.advance()
    assert_trees_close(H(X), jax.hessian(ns["f"])(X))
    assert jaxworld.stats(w)["traces"] == 1, "a cache filling was taken for a change"
