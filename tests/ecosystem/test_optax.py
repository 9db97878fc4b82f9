"""optax: training steps with a wrapped loss and a wrapped step, before and after the loss's
helper changes (issue #14). Oracle: the same optax step, plain JAX traced fresh.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import jaxworld

from ..helpers import assert_trees_close, notebook

X = jnp.linspace(-1.0, 1.0, 12).reshape(6, 2)
Y = jnp.sin(3.0 * X[:, 0]) + X[:, 1]


def _namespace():
    return notebook("""
        def act(v):
            return jnp.tanh(v)
        def loss(params, x, y):
            h = act(x @ params["w1"] + params["b1"][None, :])
            return jnp.mean((h @ params["w2"] - y) ** 2)
    """)


def _params():
    k1, k2 = jax.random.split(jax.random.key(0))
    return {"w1": jax.random.normal(k1, (2, 8)), "b1": jnp.zeros(8),
            "w2": 0.1 * jax.random.normal(k2, (8,))}


def _train(step, params, opt_state, n):
    losses = []
    for _ in range(n):
        params, opt_state, value = step(params, opt_state, X, Y)
        losses.append(value)
    return params, opt_state, jnp.stack(losses)


def _steps(loss, optimizer):
    def step(params, opt_state, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value
    return step


def test_optax_training_with_a_wrapped_loss_follows_a_change():
    ns = _namespace()
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    step = jax.jit(_steps(jaxworld.wrap(ns["loss"]), optimizer))
    params = _params()
    state = optimizer.init(params)

    def plain(params, state, n):
        return _train(jax.jit(lambda *a: _steps(ns["loss"], optimizer)(*a)), params, state, n)

    ours = _train(step, params, state, 5)
    assert_trees_close(ours, plain(params, state, 5), rtol=1e-5, atol=1e-6)
    notebook("def act(v):\n    return jax.nn.softplus(v)\n", ns)
    jaxworld.advance()
    params, state, _ = ours
    assert_trees_close(_train(step, params, state, 5), plain(params, state, 5),
                       rtol=1e-5, atol=1e-6)


def test_wrapped_step_with_an_optax_state_and_an_equinox_model():
    # The whole step is wrapped: its arguments hold optax states (named tuples, empty states)
    # and an eqx.nn.MLP (function leaves); it returns the updated MLP, activations and all.
    optimizer = optax.adamw(1e-2)
    model = eqx.nn.MLP(2, "scalar", 8, 1, activation=jnp.tanh, key=jax.random.key(3))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    def loss(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    def step(model, opt_state, x, y):
        value, grads = eqx.filter_value_and_grad(loss)(model, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, value

    wrapped = jaxworld.wrap(step)
    plain = eqx.filter_jit(lambda *a: step(*a))
    ours, theirs = (model, opt_state), (model, opt_state)
    for _ in range(4):
        m, s, v = wrapped(*ours, X, Y)
        pm, ps, pv = plain(*theirs, X, Y)
        assert m.activation is jnp.tanh  # a static output leaf comes back as it was
        assert_trees_close(eqx.filter(m, eqx.is_array), eqx.filter(pm, eqx.is_array),
                           rtol=1e-5, atol=1e-6)
        assert_trees_close(v, pv, rtol=1e-5, atol=1e-6)
        ours, theirs = (m, s), (pm, ps)
    assert jaxworld.stats(wrapped)["traces"] == 1  # one signature for all four steps
