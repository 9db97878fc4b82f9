"""flax nnx: split / merge, a wrapped loss of nnx state, a wrapped nnx Module method, `nnx.grad`
(issue #14). Oracle: plain JAX traced fresh (a new lambda under `jax.jit`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

import jaxworld

from ..helpers import assert_trees_close, notebook

X = jnp.linspace(-1.0, 1.0, 8).reshape(4, 2)
Y = jnp.array([0.5, -0.25, 1.0, 0.0])


def model():
    return nnx.Sequential(nnx.Linear(2, 5, rngs=nnx.Rngs(0)), jnp.tanh,
                          nnx.Linear(5, 1, rngs=nnx.Rngs(1)))


def _namespace():
    return notebook("""
        def penalty(state):
            return 0.01 * sum(jnp.sum(v ** 2) for v in jax.tree_util.tree_leaves(state))
        def loss(graphdef, state, x, y):
            m = nnx.merge(graphdef, state)
            return jnp.mean((m(x)[:, 0] - y) ** 2) + penalty(state)
    """, {"jax": jax, "jnp": jnp, "nnx": nnx})


def test_split_merge_loss_before_and_after_a_change():
    ns = _namespace()
    graphdef, state = nnx.split(model())
    wrapped = jaxworld.wrap(ns["loss"])  # the graphdef is a static leaf, the state is traced
    grad = jax.jit(jax.grad(wrapped, argnums=1), static_argnums=0)

    def plain_grad():
        return jax.jit(lambda s: jax.grad(lambda s: ns["loss"](graphdef, s, X, Y))(s))(state)

    assert_trees_close(wrapped(graphdef, state, X, Y),
                       jax.jit(lambda s: ns["loss"](graphdef, s, X, Y))(state))
    assert_trees_close(grad(graphdef, state, X, Y), plain_grad())
    notebook("""
        def penalty(state):
            return 0.1 * sum(jnp.sum(jnp.abs(v)) for v in jax.tree_util.tree_leaves(state))
    """, ns)
    jaxworld.advance()
    assert_trees_close(grad(graphdef, state, X, Y), plain_grad())
    H = jaxworld.hessian(lambda s: wrapped(graphdef, s, X, Y))
    H_plain = jax.jit(jax.hessian(lambda s: ns["loss"](graphdef, s, X, Y)))(state)
    assert_trees_close(H(state), H_plain, rtol=1e-4, atol=1e-5)


def test_nnx_grad_of_a_wrapped_loss_of_a_module():
    ns = _namespace()
    m = model()

    def loss_of_module(m, x, y):
        graphdef, state = nnx.split(m)
        return ns["loss"](graphdef, state, x, y)

    wrapped = jaxworld.wrap(loss_of_module)  # the nnx Module is a pytree argument
    g = nnx.grad(wrapped)(m, X, Y)
    g_plain = jax.jit(lambda s: jax.grad(
        lambda s: ns["loss"](nnx.graphdef(m), s, X, Y))(s))(nnx.state(m))
    assert_trees_close(nnx.state(g), g_plain)


def test_wrapped_nnx_method():
    ns = notebook("""
        import jaxworld

        def act(v):
            return jnp.tanh(v)

        class Block(nnx.Module):
            def __init__(self, rngs):
                self.linear = nnx.Linear(2, 3, rngs=rngs)

            @jaxworld.wrap
            def __call__(self, x):
                return jnp.sum(act(self.linear(x)) ** 2)
    """, {"jax": jax, "jnp": jnp, "nnx": nnx})
    block = ns["Block"](nnx.Rngs(0))
    kernel, bias = block.linear.kernel[...], block.linear.bias[...]

    def plain(x, act=jnp.tanh):
        return jnp.sum(act(x @ kernel + bias[None, :]) ** 2)

    assert_trees_close(block(X), jax.jit(lambda x: plain(x))(X))
    notebook("def act(v):\n    return jnp.sin(v)\n", ns)
    jaxworld.advance()
    assert_trees_close(block(X), jax.jit(lambda x: plain(x, jnp.sin))(X))
    block.linear.kernel[...] = 2.0 * kernel  # a field updated in place: a traced leaf
    kernel = 2.0 * kernel
    assert_trees_close(block(X), jax.jit(lambda x: plain(x, jnp.sin))(X))
