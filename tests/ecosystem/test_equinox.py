"""equinox: Modules as arguments, `eqx.nn.MLP` with a user activation, wrapped Module methods,
`eqx.filter_grad` / `eqx.filter_jit`, `explain` through `eqx.filter_jit` (issue #14).

The oracle is plain equinox/JAX traced fresh in the current world: a new lambda under
`eqx.filter_jit` (or `jax.jit`), so no cache applies.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree

import jaxworld

from ..helpers import assert_trees_close, notebook


def fresh(fun):
    return eqx.filter_jit(lambda *a: fun(*a))


def fresh_grad(fun):
    return eqx.filter_jit(lambda *a: eqx.filter_grad(fun)(*a))


def arrays(tree):
    return eqx.filter(tree, eqx.is_array)


X = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)
Y = jnp.array([0.5, -0.25, 1.0])


def mlp(activation=jax.nn.relu, seed=0):
    return eqx.nn.MLP(2, "scalar", 8, 2, activation=activation, key=jax.random.key(seed))


def mse(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def test_filter_grad_of_a_wrapped_loss_with_an_mlp():
    # The first example: every eqx.nn.MLP has function leaves (its activations).
    model = mlp()
    wrapped = jaxworld.wrap(mse)
    assert_trees_close(wrapped(model, X, Y), fresh(mse)(model, X, Y))
    assert_trees_close(arrays(eqx.filter_grad(wrapped)(model, X, Y)),
                       arrays(fresh_grad(mse)(model, X, Y)))
    assert_trees_close(arrays(eqx.filter_jit(eqx.filter_grad(wrapped))(model, X, Y)),
                       arrays(fresh_grad(mse)(model, X, Y)))
    assert jaxworld.stats(wrapped)["traces"] <= 2  # eager signature + the grad's tracers


def test_hessian_of_an_mlp_loss_through_partition():
    model = mlp(jnp.tanh)
    params, static = eqx.partition(model, eqx.is_array)
    flat, unravel = ravel_pytree(params)
    wrapped = jaxworld.wrap(mse)

    def loss_of(loss):
        return lambda v: loss(eqx.combine(unravel(v), static), X, Y)

    H = jax.jit(jax.hessian(loss_of(wrapped)))(flat)
    assert_trees_close(H, jax.jit(jax.hessian(lambda v: loss_of(mse)(v)))(flat),
                       rtol=1e-4, atol=1e-5)
    hvp = jaxworld.hvp(loss_of(wrapped))
    v = jnp.ones_like(flat)
    assert_trees_close(hvp(flat, v), H @ v, rtol=1e-4, atol=1e-5)


def test_mlp_with_a_user_activation_replaced():
    ns = notebook("""
        def act(v):
            return jnp.tanh(v)
    """)
    model = mlp(ns["act"])
    wrapped = jaxworld.wrap(mse)
    grad = eqx.filter_jit(eqx.filter_grad(wrapped))
    assert_trees_close(arrays(grad(model, X, Y)), arrays(fresh_grad(mse)(model, X, Y)))
    notebook("def act(v):\n    return jax.nn.softplus(v)\n", ns)
    swapped = eqx.tree_at(lambda m: m.activation, model, ns["act"])  # a new activation leaf
    assert_trees_close(arrays(grad(swapped, X, Y)), arrays(fresh_grad(mse)(swapped, X, Y)))
    assert_trees_close(wrapped(swapped, X, Y), fresh(mse)(swapped, X, Y))


def test_mlp_activation_helper_redefined_is_followed():
    # The activation is a static leaf; the helper it calls is redefined in a later "cell".
    ns = notebook("""
        def helper(v):
            return jnp.tanh(v)
        def act(v):
            return helper(v)
    """)
    model = mlp(ns["act"])
    wrapped = jaxworld.wrap(mse)
    grad = eqx.filter_jit(eqx.filter_grad(wrapped))
    grad(model, X, Y)
    notebook("def helper(v):\n    return jnp.sin(v)\n", ns)
    jaxworld.advance()
    assert_trees_close(arrays(grad(model, X, Y)), arrays(fresh_grad(mse)(model, X, Y)))
    assert_trees_close(wrapped(model, X, Y), fresh(mse)(model, X, Y))


def test_loss_helper_redefined_with_a_module_argument():
    ns = notebook("""
        import jax.numpy as jnp
        def penalty(model):
            return 0.01 * sum(jnp.sum(w ** 2) for w in
                              jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
        def loss(model, x, y):
            return jnp.mean((jax.vmap(model)(x) - y) ** 2) + penalty(model)
    """, {"jax": jax, "eqx": eqx})
    model = mlp()
    grad = eqx.filter_jit(eqx.filter_grad(jaxworld.wrap(ns["loss"])))
    assert_trees_close(arrays(grad(model, X, Y)), arrays(fresh_grad(ns["loss"])(model, X, Y)))
    notebook("""
        def penalty(model):
            return 0.1 * sum(jnp.sum(jnp.abs(w)) for w in
                             jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
    """, ns)
    jaxworld.advance()
    assert_trees_close(arrays(grad(model, X, Y)), arrays(fresh_grad(ns["loss"])(model, X, Y)))


def _module_namespace():
    return notebook("""
        import jaxworld

        def act(v):
            return jnp.tanh(v)

        class Net(eqx.Module):
            w: jax.Array
            b: jax.Array

            @jaxworld.wrap
            def __call__(self, x):
                return jnp.sum(act(x @ self.w + self.b) ** 2) + self.extra(x)

            def extra(self, x):
                return 0.0
    """, {"jax": jax, "jnp": jnp, "eqx": eqx})


def _plain_net(w, b, x, act=jnp.tanh, extra=lambda x: 0.0):
    return jnp.sum(act(x @ w + b) ** 2) + extra(x)


def test_wrapped_module_method_traces_self_and_follows_a_helper():
    ns = _module_namespace()
    net = ns["Net"](jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), jnp.full((3,), 0.1))
    x = jnp.array([0.3, -0.7])
    assert_trees_close(net(x), jax.jit(lambda x: _plain_net(net.w, net.b, x))(x))
    grad = eqx.filter_jit(eqx.filter_grad(lambda m, x: m(x)))
    g = grad(net, x)  # self is traced: gradients with respect to its fields
    g_plain = jax.jit(jax.grad(lambda w, b: _plain_net(w, b, x), argnums=(0, 1)))(net.w, net.b)
    assert_trees_close((g.w, g.b), g_plain)
    other = ns["Net"](2.0 * net.w, net.b)
    other(x)
    assert jaxworld.stats(ns["Net"].__call__)["traces"] == 1  # same signature, one trace
    notebook("def act(v):\n    return jnp.sin(v)\n", ns)
    jaxworld.advance()
    g = grad(net, x)
    g_plain = jax.jit(jax.grad(lambda w, b: _plain_net(w, b, x, jnp.sin), argnums=(0, 1)))(
        net.w, net.b)
    assert_trees_close((g.w, g.b), g_plain)
    assert_trees_close(net(x), jax.jit(lambda x: _plain_net(net.w, net.b, x, jnp.sin))(x))


def test_wrapped_module_method_follows_its_class():
    # A method the wrapped one calls is replaced on the class. `self` is a traced argument, so
    # the record must walk the argument's treedef (its class).
    ns = _module_namespace()
    net = ns["Net"](jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), jnp.full((3,), 0.1))
    x = jnp.array([0.3, -0.7])
    net(x)

    def extra(self, x):
        return jnp.sum(x ** 2)

    ns["Net"].extra = extra
    jaxworld.advance()
    assert_trees_close(net(x), jax.jit(
        lambda x: _plain_net(net.w, net.b, x, extra=lambda x: jnp.sum(x ** 2)))(x))


def test_dropout_flag_needs_static_scalars():
    # eqx.nn.Dropout's `inference` is a bool leaf: eqx.filter_jit holds it static, jax.jit (and
    # jaxworld's default) traces it. `static_scalars=True` is equinox's rule.
    model = eqx.nn.Sequential([eqx.nn.Linear(2, 3, key=jax.random.key(1)),
                               eqx.nn.Dropout(0.5, inference=True)])

    def run(m, x):
        return jnp.sum(m(x, key=jax.random.key(2)))

    x = jnp.array([0.3, -0.7])
    with pytest.raises(Exception, match="Dropout|bool|concrete|Tracer"):
        jaxworld.wrap(run)(model, x)
    assert_trees_close(jaxworld.wrap(run, static_scalars=True)(model, x), fresh(run)(model, x))


def test_explain_through_filter_jit():
    wrapped = jaxworld.wrap(mse)
    grad = eqx.filter_jit(eqx.filter_grad(wrapped))
    grad(mlp(), X, Y)
    text = jaxworld.explain(grad)
    assert "holds 1 jaxworld object(s)" in text
    assert "wrapped function mse" in text and "state: current" in text


def test_explain_names_the_origin_of_a_wrapped_module_not_a_decorator():
    # equinox wraps Module methods; explain looks through `__wrapped__` to the definition.
    mlp = eqx.nn.MLP(3, 1, 4, 1, activation=lambda z: z, key=jax.random.PRNGKey(0))
    wrapped = jaxworld.wrap(mlp)
    wrapped(jnp.ones(3))
    origin = jaxworld.explain(wrapped).splitlines()[1]
    assert "MLP.__call__" in origin and "_mlp.py" in origin, origin
    assert "source_info_util" not in origin, origin


def test_filter_jit_is_invalidated_alone_after_a_change():
    """Issue #13: `eqx.filter_jit` of a wrapped loss re-traces after its helper changes; an
    unrelated `eqx.filter_jit` and an unrelated `jax.jit` do not (scoped, no global fallback)."""
    ns = notebook("""
        def act(z):
            return jnp.tanh(z)
        def loss(model, x, y):
            return jnp.mean((act(jax.vmap(model)(x)) - y) ** 2)
    """)
    model = mlp()
    step = eqx.filter_jit(eqx.filter_value_and_grad(jaxworld.wrap(ns["loss"])))
    traced = []

    def other(model, x):
        traced.append(1)
        return jnp.sum(jax.vmap(model)(x))

    unrelated = [eqx.filter_jit(other), jax.jit(lambda x: (traced.append(1), jnp.sin(x))[1])]
    before = step(model, X, Y)
    unrelated[0](model, X), unrelated[1](X)
    stats, traced_before = jaxworld.stats(), len(traced)
    notebook("""
        def act(z):
            return jnp.sin(z) * 2.0
    """, ns)
    jaxworld.advance()
    unrelated[0](model, X), unrelated[1](X)
    assert len(traced) == traced_before  # neither re-traced
    value, grads = step(model, X, Y)
    expected_value, expected_grads = fresh(eqx.filter_value_and_grad(ns["loss"]))(model, X, Y)
    assert not jnp.allclose(value, before[0])
    assert_trees_close(value, expected_value)
    assert_trees_close(arrays(grads), arrays(expected_grads))
    now = jaxworld.stats()
    assert now["global_invalidations"] == stats["global_invalidations"]
    assert now["scoped_invalidations"] == stats["scoped_invalidations"] + 1
