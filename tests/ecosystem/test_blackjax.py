"""blackjax: a NUTS run on a wrapped log density gives plain JAX's samples under the same key,
before and after the density's prior changes (issue #14).
"""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp

import jaxworld

from ..helpers import assert_trees_close, notebook

DATA = jnp.array([0.8, 1.2, 0.3, 1.9, 1.1])


def _namespace():
    return notebook("""
        def log_prior(theta):
            return -0.5 * jnp.sum(theta["mu"] ** 2) - 0.5 * theta["log_sigma"] ** 2
        def log_density(theta):
            sigma = jnp.exp(theta["log_sigma"])
            log_lik = jnp.sum(-0.5 * ((DATA - theta["mu"]) / sigma) ** 2 - jnp.log(sigma))
            return log_lik + log_prior(theta)
    """, {"jax": jax, "jnp": jnp, "DATA": DATA})


def _samples(log_density, n=40):
    nuts = blackjax.nuts(log_density, step_size=0.3, inverse_mass_matrix=jnp.ones(2))
    init = nuts.init({"mu": jnp.asarray(0.0), "log_sigma": jnp.asarray(0.0)})

    @jax.jit
    def run(key):
        def one(state, key):
            state, info = nuts.step(key, state)
            return state, (state.position, info.num_integration_steps)
        return jax.lax.scan(one, init, jax.random.split(key, n))[1]

    return run(jax.random.key(42))


def test_nuts_samples_equal_plain_jax_before_and_after_a_change():
    ns = _namespace()
    wrapped = jaxworld.wrap(ns["log_density"])
    ours = _samples(wrapped)
    assert_trees_close(ours, _samples(lambda t: ns["log_density"](t)), rtol=1e-5, atol=1e-5)
    notebook("""
        def log_prior(theta):
            return -0.5 * jnp.sum((theta["mu"] - 3.0) ** 2) / 0.1 - 0.5 * theta["log_sigma"] ** 2
    """, ns)
    jaxworld.advance()
    after = _samples(wrapped)
    assert_trees_close(after, _samples(lambda t: ns["log_density"](t)), rtol=1e-5, atol=1e-5)
    # The prior moved the posterior: the chains differ.
    assert float(jnp.mean(after[0]["mu"])) > float(jnp.mean(ours[0]["mu"])) + 0.3
