"""Scoped invalidation (issue #13): a relevant change re-traces only what depends on it.

Every test changes a helper of a wrapped function and advances, then checks (1) each dependent
`jax.jit` against plain JAX traced fresh in the new world, (2) that `jax.jit` functions which do
not hold the stale closure neither re-trace nor re-compile (counted with `jax.monitoring`), and
(3) which path was taken: eviction of the holders (``scoped_invalidations``) or the global
fallback (``global_invalidations``), where attribution is impossible.
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.interpreters import partial_eval as pe
from jax.sharding import PartitionSpec

import jaxworld

from .helpers import assert_trees_close, notebook

X = jnp.array([0.4, -0.8, 1.3])
TIMEOUT_S = 120
_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_events: list[str] | None = None


def _listen(event, duration, **kwargs):
    if _events is not None and event in (_TRACE_EVENT, _COMPILE_EVENT):
        _events.append(event)


jax.monitoring.register_event_duration_secs_listener(_listen)


class _Counting:
    """`with _Counting() as c:` counts JAX's traces and compiles made inside the block."""

    def __enter__(self):
        global _events
        _events = self.events = []
        return self

    def __exit__(self, *exc):
        global _events
        _events = None

    @property
    def traces(self) -> int:
        return self.events.count(_TRACE_EVENT)

    @property
    def compiles(self) -> int:
        return self.events.count(_COMPILE_EVENT)


def _cell(c: float) -> str:
    return f"def act(z):\n    return jnp.tanh(z) * {c!r}\n"


def _world():
    ns = notebook(_cell(1.0) + "def loss(x):\n    return jnp.sum(act(x) ** 2) + jnp.sum(x)\n")
    return ns, jaxworld.wrap(ns["loss"])


def _fresh(ns):
    """The plain origin as a new function object: `jax.jit` caches by identity (plain JAX traced
    fresh needs a callable it never saw)."""
    return lambda x: ns["loss"](x)


def _change(ns, c: float = 3.0) -> None:
    notebook(_cell(c), ns)
    jaxworld.advance()


def _unrelated(k: int = 3):
    """`jax.jit(value_and_grad)` functions that never touch jaxworld, warmed up."""
    fns = [jax.jit(jax.value_and_grad(lambda y, s=float(i + 2): jnp.sum(jnp.sin(y * s))))
           for i in range(k)]
    for fn in fns:
        jax.block_until_ready(fn(X))
    return fns


def _mesh():
    return jax.make_mesh((1,), ("i",))


def _scan_body(f):
    def body(carry, x):
        return carry + f(x), None
    return body


def _custom_jvp(f):
    g = jax.custom_jvp(lambda x: f(x))
    g.defjvp(lambda p, t: (f(p[0]), jnp.sum(jax.grad(f)(p[0]) * t[0])))
    return g


def _custom_vjp(f):
    g = jax.custom_vjp(lambda x: f(x))
    g.defvjp(lambda x: (f(x), x), lambda x, ct: (ct * jax.grad(f)(x),))
    return g


# name -> builder(f): a function of x that uses `f` through one of the constructs whose traces
# JAX caches. The builder is called once with the wrapped function (before the change) and once
# with the plain origin (after it: plain JAX traced fresh, new function objects throughout).
DEPENDENTS = {
    "jit": lambda f: jax.jit(f),
    "jit of hessian": lambda f: jax.jit(jax.hessian(f)),
    "nested jit": lambda f: (lambda inner: jax.jit(lambda x: inner(x) * 2.0))(jax.jit(f)),
    "jit embedding a cached jit": lambda f: (
        lambda inner: (inner(X), jax.jit(lambda x: inner(x) + 1.0))[1])(jax.jit(f)),
    "grad of jit, jitted": lambda f: jax.jit(jax.grad(jax.jit(f))),
    "scan body": lambda f: (lambda body: jax.jit(
        lambda x: jax.lax.scan(body, 0.0, jnp.stack([x, 2 * x]))[0]))(_scan_body(f)),
    "cond branch": lambda f: (lambda yes, no: jax.jit(
        lambda x: jax.lax.cond(jnp.sum(x) > 0, yes, no, x)))(f, lambda x: -f(x)),
    "while body": lambda f: (lambda body: jax.jit(
        lambda x: jax.lax.while_loop(lambda c: c[0] < 2, body, (0, x, 0.0))[2]))(
        lambda c: (c[0] + 1, c[1], c[2] + f(c[1]))),
    "fori body": lambda f: (lambda body: jax.jit(
        lambda x: jax.lax.fori_loop(0, 2, lambda i, c: body(c, x), 0.0)))(
        lambda c, x: c + f(x)),
    "custom_jvp": lambda f: jax.jit(jax.grad(_custom_jvp(f))),
    "custom_vjp": lambda f: jax.jit(jax.grad(_custom_vjp(f))),
    "checkpoint": lambda f: jax.jit(jax.grad(jax.checkpoint(f))),
    "shard_map": lambda f: jax.jit(jax.shard_map(
        lambda x: f(x)[None], mesh=_mesh(), in_specs=PartitionSpec(),
        out_specs=PartitionSpec())),
    "vmap of jit": lambda f: (lambda inner: lambda x: jax.vmap(inner)(jnp.stack([x, -x])))(
        jax.jit(f)),
    "eager call": lambda f: f,
    "jaxworld.jvp": lambda f: (lambda x: jaxworld.jvp(f, (x,), (x,))[1])
    if hasattr(f, "_entries") else (lambda x: jax.jvp(f, (x,), (x,))[1]),
}


@pytest.mark.parametrize("name", list(DEPENDENTS))
def test_a_change_reaches_the_dependent_and_leaves_the_rest_warm(name):
    build = DEPENDENTS[name]
    ns, w = _world()
    dependent = build(w)
    before = np.asarray(dependent(X))
    assert_trees_close(before, build(_fresh(ns))(X))
    unrelated = _unrelated()
    stats = jaxworld.stats()
    _change(ns)
    with _Counting() as count:
        for fn in unrelated:
            jax.block_until_ready(fn(X))
    assert (count.traces, count.compiles) == (0, 0), "an unrelated jax.jit was invalidated"
    after = dependent(X)
    expected = build(_fresh(ns))(X)  # plain JAX traced fresh in the new world
    assert not np.allclose(np.asarray(expected), before)
    assert_trees_close(after, expected)
    now = jaxworld.stats()
    assert now["global_invalidations"] == stats["global_invalidations"]
    assert now["scoped_invalidations"] == stats["scoped_invalidations"] + 1
    assert jaxworld.stats(w)["traces"] == 2  # the first trace, and one re-trace
    assert_trees_close(dependent(X), expected)
    assert jaxworld.stats(w)["traces"] == 2


@pytest.mark.parametrize("name", ["jit", "jit of hessian", "nested jit", "scan body",
                                  "checkpoint", "shard_map"])
def test_a_change_after_jax_clear_caches_reaches_the_dependent(name):
    """`jax.clear_caches()` (to free memory, say) detaches every existing `jax.jit` object's
    executable cache from the map that `evict_jitted` looked it up through: before the fix, the
    next relevant change evicted a fresh, empty cache and the dependent kept the old world's
    executable, silently (session 11)."""
    build = DEPENDENTS[name]
    ns, w = _world()
    dependent = build(w)
    dependent(X)
    jax.clear_caches()
    before = np.asarray(dependent(X))  # re-traced and re-compiled after the clear
    _change(ns)
    expected = build(_fresh(ns))(X)
    assert not np.allclose(np.asarray(expected), before)
    assert_trees_close(dependent(X), expected)


def test_dependent_jit_retraces_and_recompiles_exactly_once():
    ns, w = _world()
    h = jax.jit(jax.hessian(w))
    h(X)
    _change(ns)
    with _Counting() as count:
        out = h(X)
        h(X)
    assert (count.traces, count.compiles) == (1, 1)
    assert_trees_close(out, jax.jit(jax.hessian(_fresh(ns)))(X))


def test_a_jit_the_bind_never_saw_is_found_at_lowering():
    # `mid` embeds `inner`'s cached jaxpr when first traced (inside `outer`): no `world_call`
    # is bound under it, and it is never compiled alone. After the change `outer` is evicted
    # and re-traced, and `mid`'s cache hands back the old jaxpr: the lowering rule lowers the
    # new world in its place, and falls back to the global bump for the unknown holder.
    ns, w = _world()
    inner = jax.jit(w)
    inner(X)
    mid = jax.jit(lambda y: inner(y) * 2.0)
    outer = jax.jit(lambda y: mid(y) + 1.0)
    before = np.asarray(outer(X))
    stats = jaxworld.stats()
    _change(ns)
    expected = 2.0 * ns["loss"](X) + 1.0
    assert not np.allclose(expected, before)
    assert_trees_close(outer(X), expected)
    assert jaxworld.stats()["global_invalidations"] == stats["global_invalidations"] + 1
    assert_trees_close(mid(X), 2.0 * ns["loss"](X))  # and the hidden holder is fresh too


def _fallback_after(make_holder):
    ns, w = _world()
    make_holder(w)
    stats = jaxworld.stats()
    _change(ns)
    now = jaxworld.stats()
    assert now["global_invalidations"] == stats["global_invalidations"] + 1
    assert now["scoped_invalidations"] == stats["scoped_invalidations"]
    return ns, w


def test_ahead_of_time_lowering_falls_back_to_the_global_bump():
    compiled = []
    ns, w = _fallback_after(lambda w: compiled.append(jax.jit(w).lower(X).compile()))
    assert "ahead of time" in jaxworld.explain(w) or "global fallback" in jaxworld.explain(w)
    # The Compiled object is the user's: it keeps the old world, as in plain JAX.
    assert_trees_close(jax.jit(w)(X), ns["loss"](X))


def test_a_staging_trace_jaxworld_does_not_know_falls_back_to_the_global_bump():
    jaxprs = []

    def unknown_cache(w):  # a jaxpr staged outside every cache jaxworld knows
        fun = jax.extend.linear_util.wrap_init(
            lambda x: [w(x)], debug_info=jax.api_util.debug_info("test", w, (X,), {}))
        jaxprs.append(pe.trace_to_jaxpr_dynamic(fun, [jax.typeof(X)]))

    ns, w = _fallback_after(unknown_cache)
    text = jaxworld.explain(w)
    assert "global fallback" in text and "staging trace" in text


def test_a_holder_in_flight_on_another_thread_falls_back_and_finishes_in_its_world():
    ns, w = _world()
    started, release = threading.Event(), threading.Event()

    def slow(x):
        y = w(x)  # the old closure is bound under this trace ...
        started.set()
        assert release.wait(TIMEOUT_S)  # ... which is still in flight during the advance
        return y

    J = jax.jit(slow)
    old = np.asarray(ns["loss"](X))
    results = []
    thread = threading.Thread(target=lambda: results.append(np.asarray(J(X))), daemon=True)
    thread.start()
    assert started.wait(TIMEOUT_S)
    stats = jaxworld.stats()
    _change(ns)
    assert jaxworld.stats()["global_invalidations"] == stats["global_invalidations"] + 1
    release.set()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive()
    assert_trees_close(results[0], old)  # the world it started in, whole
    assert_trees_close(J(X), ns["loss"](X))  # the next call: the new world


def test_explain_says_which_caches_a_change_reaches():
    ns, w = _world()
    h = jax.jit(jax.hessian(w))
    h(X)
    text = jaxworld.explain(w)
    assert "JAX caches: a change evicts only the JAX caches that hold it" in text


def test_no_op_advance_evicts_nothing():
    ns, w = _world()
    h = jax.jit(jax.hessian(w))
    h(X)
    stats = jaxworld.stats()
    jaxworld.advance()
    with _Counting() as count:
        h(X)
    assert (count.traces, count.compiles) == (0, 0)
    now = jaxworld.stats()
    assert now["scoped_invalidations"] == stats["scoped_invalidations"]
    assert now["global_invalidations"] == stats["global_invalidations"]


def test_a_plain_jit_helper_of_the_origin_is_traced_again_after_its_global_changed():
    # Before issue #13 the global bump made every plain `jax.jit` re-trace; now the re-trace of
    # the wrapped function evicts the plain helpers its record reaches.
    ns = notebook("""
        C = 1.0
        hj = jax.jit(lambda x: C * x)
        def f(x):
            return jnp.sum(hj(x) ** 2)
    """)
    J = jax.jit(jaxworld.wrap(ns["f"]))
    J(X)
    ns["C"] = 2.0
    jaxworld.advance()
    assert_trees_close(J(X), np.sum((2.0 * np.asarray(X)) ** 2))


def test_a_hidden_holder_whose_signature_changed_raises_and_calling_again_works():
    # As above, but the new world's closure has another output shape: it cannot be lowered in
    # the old one's place. Loud, never mixed; the global fallback makes the next call re-trace.
    ns = notebook("""
        def act(z):
            return jnp.tanh(z)
        def vec(x):
            return act(x) * 2.0
    """)
    w = jaxworld.wrap(ns["vec"])
    inner = jax.jit(w)
    inner(X)
    mid = jax.jit(lambda y: inner(y) + 1.0)
    outer = jax.jit(lambda y: jnp.sum(mid(y)))
    outer(X)
    notebook("""
        def act(z):
            return jnp.concatenate([z, z])
    """, ns)
    jaxworld.advance()
    with pytest.raises(jaxworld.WorldChangeError):
        outer(X)
    assert_trees_close(outer(X), np.sum(np.concatenate([X, X]) * 2.0 + 1.0))


_LIBRARY_SOLVER = """
    import functools
    import jax

    @functools.partial(jax.jit, static_argnums=0)
    def solve(fn, x):  # a library's jax.jit with the user's function as a static argument
        return fn(x) * 2.0
"""


def test_a_library_jit_keyed_on_a_user_function_takes_the_global_fallback():
    """A library's `jax.jit` (diffrax's `diffeqsolve`, optimistix's solvers) caches its trace
    keyed on the user's function, which did not change when what it reads did: JAX's cache hands
    the old trace back to the re-trace, and plain JAX traced fresh is stale too (session 11).
    jaxworld sees a nested trace of user code come back unchanged and takes the global fallback,
    counted and explained."""
    from .reach_helpers import library_code

    ns = notebook("""
        K = 1.0
        def field(v):
            return -K * v
        def loss(x):
            return jnp.sum(solve(field, x) ** 2)
    """, {"jax": jax, "jnp": jnp, "solve": library_code(_LIBRARY_SOLVER)["solve"]})
    w = jaxworld.wrap(ns["loss"])
    h = jax.jit(jax.hessian(w))
    before = np.asarray(h(X))
    stale = np.asarray(jax.jit(jax.hessian(_fresh_of(ns, "loss")))(X))
    stats = jaxworld.stats()
    notebook("K = 3.0", ns)
    jaxworld.advance()
    assert_trees_close(np.asarray(jax.jit(jax.hessian(_fresh_of(ns, "loss")))(X)), stale)
    after = h(X)  # before any clear: plain JAX above is stale, jaxworld must not be
    assert jaxworld.stats()["global_invalidations"] == stats["global_invalidations"] + 1
    jax.clear_caches()
    expected = jax.jit(jax.hessian(_fresh_of(ns, "loss")))(X)
    assert not np.allclose(np.asarray(expected), before)
    assert_trees_close(after, expected)
    assert "JAX's caches handed back traces made before the change" in (
        jaxworld._epoch.last_global_reason)


def test_nested_library_jits_of_library_code_keep_the_change_scoped():
    """The fallback above is for nested traces that ran user code inside them: `jnp` functions
    and a library's jax.jit of library code, called from user code, stay on the scoped path."""
    ns = notebook("""
        def act(z):
            return jnp.tanh(z)
        def loss(x):
            return jnp.linalg.norm(act(x)) + jnp.sum(jax.nn.logsumexp(x) * act(x))
    """)
    w = jaxworld.wrap(ns["loss"])
    h = jax.jit(jax.hessian(w))
    h(X)
    stats = jaxworld.stats()
    notebook("def act(z):\n    return jnp.sin(z) * 2.0\n", ns)
    jaxworld.advance()
    assert_trees_close(h(X), jax.jit(jax.hessian(_fresh_of(ns, "loss")))(X))
    now = jaxworld.stats()
    assert now["global_invalidations"] == stats["global_invalidations"]
    assert now["scoped_invalidations"] == stats["scoped_invalidations"] + 1


def _fresh_of(ns, name):
    return lambda x: ns[name](x)
