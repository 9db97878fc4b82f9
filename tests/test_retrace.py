"""Re-tracing on a new epoch in a notebook-like namespace (issue #2).

A helper is redefined in a "cell" (`helpers.notebook`, `exec` into a dict). After
`jaxworld.advance()` every answer — value, gradient, Hessian, HVP, third derivative, and a
`jax.jit(jax.hessian(...))` built before the change — equals plain JAX's on the new definition,
traced fresh. Without an advance, the old world's answers are kept (as in Julia).
"""

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook, tangents_like, vector

FIRST_CELL = """
import jaxworld

def g(x):
    return jnp.sin(x)

def f(x):
    return jnp.sum(g(x) ** 2 * x)

wf = jaxworld.wrap(f)
"""

REDEFINE_G = """
def g(x):
    return 3.0 * jnp.cos(x) + x ** 2
"""


def _derivatives(fun):
    """value, grad, Hessian, HVP (jvp of grad) and the third derivative of a scalar function."""
    def run(x):
        v = tangents_like(x)
        return {
            "value": fun(x),
            "grad": jax.grad(fun)(x),
            "hessian": jax.hessian(fun)(x),
            "hvp": jax.jvp(jax.grad(fun), (x,), (v,))[1],
            "third": jax.jacfwd(jax.hessian(fun))(x),
        }
    return run


def _plain_jax_fresh(ns, x):
    # A new lambda each time: jax.jit's cache cannot hand back an old trace of f.
    return jax.jit(lambda x: _derivatives(lambda y: ns["f"](y))(x))(x)


def _assert_all_close(actual, expected):
    for name in expected:
        try:
            assert_trees_close(actual[name], expected[name])
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


# Each test runs under x32 by default and also under x64 with `-m slow`.
X64_SLOW = pytest.mark.parametrize("x64", [False, pytest.param(True, marks=pytest.mark.slow)],
                                   ids=["x32", "x64"], indirect=True)


@X64_SLOW
def test_redefined_helper_after_advance_matches_plain_jax(x64):
    ns = notebook(FIRST_CELL)
    wf, x = ns["wf"], vector(3)
    jitted = jax.jit(_derivatives(wf))           # built (and traced) in the old world
    jitted_hessian = jax.jit(jax.hessian(wf))
    old = _plain_jax_fresh(ns, x)
    _assert_all_close(jitted(x), old)
    _assert_all_close(_derivatives(wf)(x), old)  # eagerly too
    assert_trees_close(jitted_hessian(x), old["hessian"])

    notebook(REDEFINE_G, ns)
    jaxworld.advance()
    new = _plain_jax_fresh(ns, x)
    assert not jnp.allclose(new["hessian"], old["hessian"])  # the change is visible
    _assert_all_close(jitted(x), new)
    _assert_all_close(_derivatives(wf)(x), new)
    assert_trees_close(jitted_hessian(x), new["hessian"])
    assert_trees_close(jax.jit(jax.hessian(wf))(x), new["hessian"])
    assert jaxworld.stats(wf)["traces"] == 2  # one trace per world that changed


@X64_SLOW
def test_without_advance_the_old_world_is_kept(x64):
    ns = notebook(FIRST_CELL)
    wf, x = ns["wf"], vector(3)
    jitted = jax.jit(_derivatives(wf))
    old = _plain_jax_fresh(ns, x)
    _assert_all_close(jitted(x), old)
    _assert_all_close(_derivatives(wf)(x), old)

    notebook(REDEFINE_G, ns)  # no advance: code runs in the world it was traced in
    assert not jnp.allclose(_plain_jax_fresh(ns, x)["value"], old["value"])
    _assert_all_close(jitted(x), old)
    _assert_all_close(_derivatives(wf)(x), old)
    _assert_all_close(jax.jit(_derivatives(wf))(x), old)  # even a new jit traced now
    assert jaxworld.stats(wf)["traces"] == 1


def test_advance_without_change_retraces_nothing():
    ns = notebook(FIRST_CELL)
    wf, x = ns["wf"], vector(3)
    hessian = jax.jit(jax.hessian(wf))
    expected = hessian(x)
    jaxworld.reset_stats()
    jaxworld.advance()
    assert_trees_close(hessian(x), expected)
    assert jaxworld.stats(wf)["traces"] == 0
    assert jaxworld.stats(wf)["derivations"] == 0


@X64_SLOW
def test_prepared_operators_follow_the_new_world(x64):
    ns = notebook(FIRST_CELL)
    wf, x = ns["wf"], vector(3)
    v = tangents_like(x)
    operators = {"grad": jaxworld.grad(wf), "hessian": jaxworld.hessian(wf, mode="rev_over_rev"),
                 "hvp": lambda x: jaxworld.hvp(wf)(x, v)}
    for _ in range(2):
        expected = _plain_jax_fresh(ns, x)
        for name, op in operators.items():
            assert_trees_close(op(x), expected[name])
        notebook(REDEFINE_G, ns)
        jaxworld.advance()


@X64_SLOW
def test_stale_vjp_pullback_rederives_from_origin(x64):
    ns = notebook(FIRST_CELL)
    x = vector(3)
    _, pullback = jaxworld.vjp(ns["wf"], x)
    notebook(REDEFINE_G, ns)
    jaxworld.advance()
    expected = jax.vjp(lambda y: ns["f"](y), x)[1](jnp.ones(()))
    assert_trees_close(pullback(jnp.ones((), x.dtype)), expected)


SHAPE_CELL = """
import jaxworld

def g(x):
    return jnp.sin(x)

wg = jaxworld.wrap(lambda x: g(x) * 2.0)
"""

CHANGE_SHAPE = """
def g(x):
    return jnp.stack([jnp.sin(x), jnp.cos(x)])
"""


def test_a_live_enclosing_trace_keeps_its_world_when_the_shape_changes_meanwhile():
    # Issue #12: a computation is pinned to the world it started in. The second call of wg in
    # the same trace gets the same (old world's) closure as the first, so the shape it relied on
    # holds; before, the re-trace to f32[2,3] raised WorldChangeError here.
    ns = notebook(SHAPE_CELL)
    wg, x = ns["wg"], vector(3)
    wg(x)

    def outer(x):
        first = wg(x)  # the enclosing trace relies on f32[3] here ...
        notebook(CHANGE_SHAPE, ns)  # ... a cell runs meanwhile (another thread, a callback) ...
        jaxworld.advance()
        return first + wg(x)  # ... and the new world would give f32[2,3]

    assert_trees_close(jax.jit(outer)(x), 4.0 * jnp.sin(x))
    # Outside of any trace that relied on the old shape, the new world is simply used.
    assert_trees_close(wg(x), jnp.stack([jnp.sin(x), jnp.cos(x)]) * 2.0)

