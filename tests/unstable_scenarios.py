"""A self-test scenario module for the stability checks of `jaxworld check` (issue #15).

Each scenario but the first breaks one stability check on purpose, while its values agree with
plain JAX, so that only that check can catch it:

- "re-traces every call": a `jax.debug.callback` bumps a JAX user context (part of every
  `jax.jit` cache key) at every run, so no steady-state call finds its executable: each one
  re-traces and re-compiles;
- "edits its input in place": the function sets an element of the NumPy array it is given
  (through the reference it holds) while being traced;
- "weak type drifts": a run-time callback flips a setting the trace reads, so the trace that
  jaxworld prepared returns a weakly typed value and plain JAX traced fresh afterwards returns the
  same value strongly typed.

`jaxworld check --suite tests.unstable_scenarios:SCENARIOS` must fail exactly these three cases,
each on its own check (``steady``, ``intact``, ``dtypes``).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxworld.testing import Scenario

_CONTEXT = jax.make_user_context(0)
_BUMPS = itertools.count(1)


def _bump_cache_key():
    _CONTEXT.set_global(next(_BUMPS))


def bumps_a_cache_key(x):
    jax.debug.callback(_bump_cache_key)
    return jnp.sum(jnp.sin(x) ** 2)


DATA = np.linspace(0.1, 1.0, 4, dtype=np.float32)


def edits_its_input(x):
    DATA[0] = 5.0  # in-place edit of the array passed as `x`, at trace time
    return jnp.sum(jnp.sin(x) ** 2)


_STRONG = [False]


def _flip():
    _STRONG[0] = True


def weak_type_drift(x):
    jax.debug.callback(_flip)
    y = x * 2.0 + 1.0  # weakly typed for a Python float x
    return jnp.float32(y) if _STRONG[0] else y  # the same value, strongly typed after a run


X = jnp.linspace(0.1, 1.0, 4)

SCENARIOS = [
    Scenario(lambda x: jnp.sum(jnp.sin(x) ** 2), (X,), "grad", name="stable control"),
    Scenario(bumps_a_cache_key, (X,), "value", name="re-traces every call"),
    Scenario(edits_its_input, (DATA,), "grad", name="edits its input in place"),
    Scenario(weak_type_drift, (0.5,), "value", name="weak type drifts"),
]
