"""Memory: caches of closures, derivations and executables are bounded and release dead origins,
and RSS stays flat over long redefine-advance-call loops (issue #7, item 3)."""

from __future__ import annotations

import gc
import sys
import weakref

import jax
import jax.numpy as jnp
import pytest

import jaxworld
from jaxworld import _wrap
from jaxworld._bench import rss_mb

from .helpers import assert_trees_close, notebook

X = jnp.array([0.3, -0.2, 0.9])


def _fresh():
    ns = notebook("""
        def g(x):
            return jnp.sin(x)

        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    return jaxworld.wrap(ns["f"]), ns


def _use_call(wf):
    wf(X)


def _use_jit_hessian(wf):
    jax.jit(jax.hessian(wf))(X)


def _use_operators(wf):
    for op in (jaxworld.hessian(wf, mode="rev_over_rev"), jaxworld.grad(wf), jaxworld.jit(wf)):
        op(X)
    jaxworld.hvp(wf)(X, X)


def _use_pullback(wf):
    _, pullback = jaxworld.vjp(wf, X)
    pullback(1.0)
    jax.jvp(lambda c: pullback(c)[0], (1.0,), (1.0,))


def _use_vmap_scan(wf):
    jax.vmap(wf)(jnp.stack([X, X]))
    jax.lax.scan(lambda c, x: (c + wf(x), None), 0.0, jnp.stack([X, X]))


def _use_after_advance(wf):
    wf(X)
    wf.__wrapped__.__globals__["g"] = jnp.cos
    jaxworld.advance()
    jax.grad(wf)(X)


def _use_jaxworld_jit(wf):
    jaxworld.jit(wf)(X)


# (use, released at once). The others are held by JAX's own weak-keyed trace caches whose cached
# jaxpr refers to the wrapped function that keys it (jax.jit(wf), a scan body calling wf, the hvp
# operator's function) until `jax.clear_caches()` (or until JAX's LRU drops them).
_USES = [(_use_call, True), (_use_jit_hessian, True), (_use_operators, False),
         (_use_pullback, True), (_use_vmap_scan, False), (_use_after_advance, True),
         (_use_jaxworld_jit, False)]


@pytest.mark.parametrize("use,at_once", _USES, ids=[u.__name__[5:] for u, _ in _USES])
def test_dead_wrapped_function_and_origin_are_released(use, at_once):
    wf, ns = _fresh()
    use(wf)
    refs = [weakref.ref(wf), weakref.ref(ns["f"]), *(weakref.ref(e) for e in wf._entries.values())]
    refs += [weakref.ref(e.closure) for e in wf._entries.values() if e.closure is not None]
    del wf, ns, use
    gc.collect()
    if at_once:
        assert all(r() is None for r in refs)
    jax.clear_caches()
    gc.collect()
    assert all(r() is None for r in refs)


@pytest.mark.parametrize("use", [_use_call, _use_jit_hessian, _use_after_advance],
                         ids=["call", "jit_hessian", "after_advance"])
def test_dead_user_classes_are_released(use):
    # The walk memoizes per type (its rules, what a class's values need checked): a user class,
    # whose methods' globals hold it, must not be kept alive by those memos, nor by a record.
    ns = notebook("""
        class Layer:
            scale = 2.0
            def __call__(self, x):
                return jnp.sin(x) * self.scale

        LAYER = Layer()

        def g(x):
            return LAYER(x)

        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    wf = jaxworld.wrap(ns["f"])
    use(wf)
    refs = [weakref.ref(ns["Layer"]), weakref.ref(ns["LAYER"])]
    del wf, ns, use
    gc.collect()
    assert all(r() is None for r in refs)


def test_scoped_relevant_advances_never_clear_jax_caches(monkeypatch):
    """Issue #13: a relevant change evicts the stale entries themselves, so no
    `jax.clear_caches()` is ever needed (and no dead generation is made)."""
    from jaxworld import _epoch

    released = []
    monkeypatch.setattr(_epoch.jax, "clear_caches", lambda: released.append(_epoch._generation))
    wf, ns = _fresh()
    jax.jit(jax.hessian(wf))(X)
    generation, before = _epoch._generation, jaxworld.stats()
    for i in range(2 * _epoch.RELEASE_EVERY + 1):
        notebook(f"def g(x):\n    return jnp.sin(x) * {2.0 + i}\n", ns)
        jaxworld.advance()
        assert_trees_close(jax.jit(jax.hessian(wf))(X),
                           jax.hessian(lambda x, c=2.0 + i: jnp.sum((jnp.sin(x) * c) ** 2))(X))
    after = jaxworld.stats()
    assert released == [] and _epoch._generation == generation
    assert after["global_invalidations"] == before["global_invalidations"]
    scoped = after["scoped_invalidations"] - before["scoped_invalidations"]
    assert scoped == 2 * _epoch.RELEASE_EVERY + 1


def test_dead_generations_of_the_global_fallback_are_released_in_batches(monkeypatch):
    """Where the global fallback is taken (a holder jaxworld cannot evict), old-generation
    entries are released in batches (issue #6: releasing on every relevant advance made a
    relevant change ~10% dearer than a fresh plain jax.jit), so at most RELEASE_EVERY - 1 dead
    generations are ever held; a no-op advance releases nothing."""
    from jaxworld import _caches, _epoch

    released = []
    monkeypatch.setattr(_epoch.jax, "clear_caches", lambda: released.append(_epoch._generation))
    monkeypatch.setattr(_caches, "staging_in_flight", lambda funs: "forced by the test")
    _epoch.release_caches()
    released.clear()
    wf, ns = _fresh()
    jax.jit(jax.hessian(wf))(X)
    for _ in range(3):
        jaxworld.advance()  # nothing changed
    assert released == []
    generation = _epoch._generation
    k = _epoch.RELEASE_EVERY
    for i in range(2 * k + 1):
        notebook(f"def g(x):\n    return jnp.sin(x) * {2.0 + i}\n", ns)
        jaxworld.advance()
        # Every relevant change is seen at once, released or not.
        assert_trees_close(jax.jit(jax.hessian(wf))(X),
                           jax.hessian(lambda x, c=2.0 + i: jnp.sum((jnp.sin(x) * c) ** 2))(X))
    assert released == [generation + k, generation + 2 * k]


def test_live_registry_shrinks_when_functions_die():
    gc.collect()
    jaxworld.advance()
    before = len(_wrap._live)
    wrapped = [_fresh()[0] for _ in range(20)]
    for wf in wrapped:
        wf(X)
        wf(jnp.ones(5))
    assert len(_wrap._live) >= before + 40
    del wrapped, wf
    gc.collect()
    jaxworld.advance()  # validation drops the dead entries
    assert len(_wrap._live) <= before


def test_jvp_cache_does_not_keep_its_function_alive():
    """Found by this suite: `jaxworld.jvp`'s per-function cache held its key (the wrapped
    function) strongly through its value (never released). Now only JAX's own trace cache holds
    it, until `jax.clear_caches()`."""
    wf, ns = _fresh()
    jaxworld.jvp(wf, (X,), (X,))
    ref = weakref.ref(wf)
    del wf, ns
    jax.clear_caches()
    gc.collect()
    assert ref() is None


def test_entries_do_not_keep_call_arguments_alive():
    """Found by this suite: an entry kept the first call's arguments (arrays, or tracers) for its
    re-traces. It now keeps only their avals."""
    wf, _ = _fresh()
    big = jnp.ones((512, 512))
    ref = weakref.ref(big)
    wf(big)
    jax.grad(wf)(big)
    del big
    gc.collect()
    assert ref() is None
    # And re-tracing from the avals still works (a new world, same signature).
    wf.__wrapped__.__globals__["g"] = jnp.tanh
    jaxworld.advance()
    assert_trees_close(wf(jnp.ones((512, 512))), jnp.sum(jnp.tanh(jnp.ones((512, 512))) ** 2))


def test_entries_of_one_wrapped_function_are_bounded(monkeypatch):
    monkeypatch.setattr(_wrap, "_MAX_ENTRIES", 32)  # the mechanism, with a small bound
    wf = jaxworld.wrap(lambda x, n: x * n, static_argnums=1)
    limit = _wrap._MAX_ENTRIES
    for n in range(limit + 40):
        wf(1.0, n)
    assert len(wf._entries) == limit
    # The oldest signature was dropped; calling it again re-traces it and is still correct.
    # (Under a fresh jax.jit: an eager call is served by the eager path's own jax.jit cache,
    # bounded by JAX, which still holds the compiled call; issue #14.)
    jaxworld.reset_stats()
    assert float(jax.jit(lambda x: wf(x, 0))(2.0)) == 0.0
    assert jaxworld.stats(wf)["traces"] == 1
    assert float(jax.jit(lambda x: wf(x, limit + 39))(2.0)) == 2.0 * (limit + 39)
    assert jaxworld.stats(wf)["traces"] == 1  # the newest is still cached


def test_derivations_are_cached_once_per_key():
    wf, _ = _fresh()
    for _ in range(5):
        jax.hessian(wf)(X)
        jax.jit(jax.grad(wf))(X)
    root = next(iter(wf._entries.values())).closure
    n = len(root._derived)
    for _ in range(5):
        jax.hessian(wf)(X)
    assert len(root._derived) == n  # no growth from repeated identical transformations


def _redefine_advance_call_loop(cycles: int, *, jitted: bool) -> tuple[float, float]:
    ns = notebook("""
        def g(x):
            return jnp.sin(x)

        def f(x):
            return jnp.sum(g(x) ** 2 * C)
    """, {"jnp": jnp, "C": 1.0})
    wf = jaxworld.wrap(ns["f"])
    H = jaxworld.hessian(wf)
    jit_grad = jax.jit(jax.grad(wf))
    _, pullback = jaxworld.vjp(wf, X)

    def cycle(i):
        notebook(f"def g(x):\n    return jnp.sin(x) * {1.0 + (i % 7) * 0.1}\n", ns)
        ns["C"] = float(i % 5) + 1.0
        jaxworld.advance()
        wf(X)
        pullback(1.0)
        if jitted:
            H(X)
            jit_grad(X)
            jax.hessian(wf)(X)  # eager nested AD: derived closures and their executables

    for i in range(40):  # warm up: first compilations, allocator pools (~19 MB, then flat)
        cycle(i)
    gc.collect()
    start = rss_mb()
    for i in range(cycles):
        cycle(i)
    gc.collect()
    # The last world's answers are still right.
    scale, c = 1.0 + ((cycles - 1) % 7) * 0.1, float((cycles - 1) % 5) + 1.0
    expected = lambda x: jnp.sum((jnp.sin(x) * scale) ** 2 * c)  # noqa: E731
    assert_trees_close(pullback(1.0)[0], jax.grad(expected)(X))
    return start, rss_mb()


# Resident memory as `jaxworld bench` reads it (/proc, else peak RSS from `resource`); only
# Windows has neither.
_MEASURABLE = pytest.mark.skipif(
    sys.platform == "win32", reason="RSS is read from /proc or resource.getrusage (not on Windows)")


@_MEASURABLE
def test_rss_flat_over_redefine_advance_call_loop():
    """Found by this suite: replaced closures lived in reference cycles (a root was its own
    `_root`; parents cache their derived closures, which point back), so only the cyclic GC freed
    them and their executables: RSS grew ~0.6 MB per cycle (~50 MB over 80). An entry now retires
    the closure it replaces (`_closure.retire` empties the tree's caches, leaving it acyclic), and
    reference counting frees it at once: flat after warm-up."""
    start, end = _redefine_advance_call_loop(80, jitted=False)
    assert end - start < 25.0, f"RSS grew {end - start:.1f} MB over 80 cycles"


@pytest.mark.slow
@_MEASURABLE
def test_rss_flat_over_long_redefine_advance_call_loop():
    start, end = _redefine_advance_call_loop(1000, jitted=False)
    print(f"RSS {start:.1f} MB -> {end:.1f} MB over 1000 cycles")
    assert end - start < 50.0, f"RSS grew {end - start:.1f} MB over 1000 cycles"


@pytest.mark.slow
@_MEASURABLE
def test_rss_flat_over_redefine_advance_loop_with_jitted_operators():
    """Found by this suite: each relevant advance bumps the JAX user context, so every jax.jit
    re-compiles under a new cache key and the old executables stayed in jax.jit's caches until
    JAX's LRU evicted them (~1.5-1.9 MB per cycle; eager nested AD ~30 MB per cycle). `advance()`
    now releases them with `jax.clear_caches()` every `RELEASE_EVERY` relevant advances."""
    start, end = _redefine_advance_call_loop(20, jitted=True)
    assert end - start < 25.0, f"RSS grew {end - start:.1f} MB over 20 cycles"
