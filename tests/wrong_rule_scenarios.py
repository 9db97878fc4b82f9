"""A scenario module with a deliberately wrong `custom_jvp` rule: the self-test of `jaxworld check`.

`wrong_sin`'s rule says d/dx sin(x) = 1.5 cos(x). Plain JAX uses the same (wrong) rule, so it
agrees with jaxworld; only the float64 finite differences, which see function values alone, catch
it. `jaxworld check --suite tests.wrong_rule_scenarios:SCENARIOS` must fail on exactly
"wrong custom_jvp rule: grad" and pass the rest.
"""

import jax
import jax.numpy as jnp

from jaxworld.testing import Scenario

WRONG_FACTOR = 1.5


@jax.custom_jvp
def wrong_sin(x):
    return jnp.sin(x)


@wrong_sin.defjvp
def _wrong_sin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return wrong_sin(x), WRONG_FACTOR * jnp.cos(x) * t  # wrong on purpose


@jax.custom_jvp
def right_sin(x):
    return jnp.sin(x)


@right_sin.defjvp
def _right_sin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return right_sin(x), jnp.cos(x) * t


def wrong_loss(x):
    return jnp.sum(wrong_sin(x) * x)


def right_loss(x):
    return jnp.sum(right_sin(x) * x)


X = jnp.linspace(0.1, 1.0, 5)

SCENARIOS = [
    Scenario(right_loss, (X,), "grad", name="correct rule: grad"),
    Scenario(right_loss, (X,), "hessian", name="correct rule: hessian"),
    # The value does not use the rule: this case passes even with the wrong rule.
    Scenario(wrong_loss, (X,), "value", name="wrong custom_jvp rule: value"),
    Scenario(wrong_loss, (X,), "grad", name="wrong custom_jvp rule: grad"),
]
