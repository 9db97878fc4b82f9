"""Issue #11 with real models: equinox, flax nnx and flax linen (and jaxtyping, which comes with
equinox). Same table-and-check structure as `tests/test_reach.py` (`tests/reach_helpers.py`):
every pattern is prepared three ways and called before the change; after the change and
`jaxworld.advance()` it must equal plain JAX traced fresh, and the change must change the answer.

Written before the fix (issue #11): on the code of that time most rows fail with a stale answer.
"""

from __future__ import annotations

import gc

import diffrax
import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import lineax as lx
import optax
import optimistix as optx
import pytest
from flax import nnx
from jaxtyping import jaxtyped

import jaxworld

from ..helpers import notebook
from ..reach_helpers import (
    PREPARATIONS,
    Pattern,
    assert_noop_advances_change_nothing,
    assert_stale_without_reach,
    check,
    parametrize,
    prepare_jit_of_jax_transform,
    prepare_plain_jax_traced_fresh,
)

LIBRARIES = {"eqx": eqx, "nn": nn, "nnx": nnx, "optax": optax, "jaxtyped": jaxtyped,
             "diffrax": diffrax, "optx": optx, "lx": lx}


class ModelPattern(Pattern):
    """A `Pattern` whose namespace also holds the libraries (`eqx`, `nn`, `nnx`, ...)."""

    def names(self) -> dict:
        return {**super().names(), **LIBRARIES}


_HELPER = """
        def act(v):
            return jnp.sin(v)
"""
_NEW_HELPER = """
def act(v):
    return 2.0 * jnp.cos(v) + 0.5 * v ** 2
"""

PATTERNS = (
    # A model passed as an argument.
    ModelPattern("equinox_module_argument_method_calls_redefined_helper", _HELPER + """
        class Model(eqx.Module):
            w: jax.Array
            def __call__(self, x):
                return act(self.w * x)
        def f(model, x):
            return jnp.sum(model(x) ** 2)
        args = (Model(jnp.array([1.0, 2.0, -0.5])), jnp.asarray(X))
    """, _NEW_HELPER, argnums=1, eager_hessian_in_default_run=True),
    ModelPattern("nnx_split_merge_state_argument", _HELPER + """
        class Model(nnx.Module):
            def __init__(self):
                self.w = nnx.Param(jnp.array([1.0, 2.0, -0.5]))
            def __call__(self, x):
                return act(self.w[...] * x)
        graphdef, state = nnx.split(Model())
        def f(graphdef, state, x):
            return jnp.sum(nnx.merge(graphdef, state)(x) ** 2)
        args = (graphdef, state, jnp.asarray(X))
    """, _NEW_HELPER, argnums=2),
    ModelPattern("linen_apply_as_static_argument", _HELPER + """
        class Model(nn.Module):
            def setup(self):
                self.w = self.param("w", lambda key: jnp.array([1.0, 2.0, -0.5]))
            def __call__(self, x):
                return act(self.w * x)
        model = Model()
        params = model.init(jax.random.key(0), jnp.asarray(X))
        def f(apply, params, x):
            return jnp.sum(apply(params, x) ** 2)
        args = (model.apply, params, jnp.asarray(X))
    """, _NEW_HELPER, argnums=2, static_argnums=(0,)),
    # User classes taken for library code because of a library decorator.
    ModelPattern("linen_nn_compact_model_read_as_global", _HELPER + """
        class Model(nn.Module):
            @nn.compact
            def __call__(self, x):
                w = self.param("w", lambda key: jnp.array([1.0, 2.0, -0.5]))
                return act(w * x)
        model = Model()
        params = model.init(jax.random.key(0), jnp.asarray(X))
        def f(x):
            return jnp.sum(model.apply(params, x) ** 2)
        args = (jnp.asarray(X),)
    """, _NEW_HELPER),
    ModelPattern("class_whose_first_method_is_jaxtyped", _HELPER + """
        class Layer:
            @jaxtyped(typechecker=None)
            def __call__(self, x):
                return act(x) * self.scale
            def __init__(self, scale):
                self.scale = scale
        layer = Layer(2.0)
        def f(x):
            return jnp.sum(layer(x) ** 2)
        args = (jnp.asarray(X),)
    """, _NEW_HELPER),
    # Library objects that hold user code.
    ModelPattern("equinox_mlp_with_a_user_activation", """
        SLOPE = 0.1
        def leaky_relu(z, slope):
            return jnp.where(z > 0, z, slope * z)
        mlp = eqx.nn.MLP(3, 2, 4, 1, activation=lambda z: leaky_relu(z, SLOPE),
                         key=jax.random.key(0))
        def f(x):
            return jnp.sum(mlp(x) ** 2)
        args = (jnp.asarray(X),)
    """, "SLOPE = 0.5"),
    ModelPattern("wrap_of_an_equinox_mlp_with_a_user_activation", """
        SLOPE = 0.1
        f = eqx.nn.MLP(3, "scalar", 4, 1, activation=lambda z: jax.nn.leaky_relu(z, SLOPE),
                       key=jax.random.key(0))
        args = (jnp.asarray(X),)
    """, "SLOPE = 0.5", kind="grad"),
    # The schedule sits five library closures down (`chain`, `with_extra_args_support`,
    # `scale_by_schedule`, `scale_by_learning_rate`'s lambda): silently stale before session 11.
    ModelPattern("optax_learning_rate_schedule_reads_a_global", """
        BASE_LR = 0.1
        opt = optax.sgd(learning_rate=lambda count: BASE_LR * 2.0)
        def f(x):
            updates, _ = opt.update(jnp.sin(x) ** 2, opt.init(x))
            return jnp.sum(updates * x)
        args = (jnp.asarray(X),)
    """, "BASE_LR = 0.3"),
    # A library module held in a global, its parameters set in place: the state lives in fields
    # that only the library's own code reads (`Linear.__call__` reads `self.kernel`, whose
    # indexing reads the `Variable`'s `_raw_value` slot). Silently stale before session 12.
    ModelPattern("nnx_module_global_parameter_assigned", """
        model = nnx.Linear(3, 3, rngs=nnx.Rngs(0))
        def f(x):
            return jnp.sum(jnp.sin(model(x)) ** 2)
        args = (jnp.asarray(X),)
    """, "model.kernel[...] = model.kernel[...] * 2.0 + 1.0"),
    ModelPattern("nnx_module_global_state_updated", """
        model = nnx.Linear(3, 3, rngs=nnx.Rngs(0))
        def f(x):
            return jnp.sum(jnp.sin(model(x)) ** 2)
        args = (jnp.asarray(X),)
    """, """
graphdef, state = nnx.split(model)
nnx.update(model, jax.tree_util.tree_map(lambda a: a + 1.0, state))
""", kind="grad"),
    # `inject_hyperparams` keeps the schedule in a library object (`WrappedSchedule`) in a dict
    # in a closure of `update`: silently stale before session 12.
    ModelPattern("optax_injected_hyperparameter_schedule_reads_a_global", """
        SCALE = 0.1
        opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lambda count: SCALE)
        def f(x):
            updates, _ = opt.update(jnp.sin(x), opt.init(x), x)
            return jnp.sum((x + updates) ** 2)
        args = (jnp.asarray(X),)
    """, "SCALE = 0.5"),
    # A library's own `jax.jit` (`eqx.filter_jit` inside the solver) keyed on the user's
    # function as a static argument: after the change JAX's cache hands back the old trace.
    # Plain JAX traced fresh is stale as well (so its oracle clears JAX's caches first);
    # jaxworld sees the reused trace of user code and takes the global fallback.
    ModelPattern("diffrax_vector_field_reads_a_global", """
        K = 1.0
        term = diffrax.ODETerm(lambda t, y, a: -K * y)
        def f(x):
            sol = diffrax.diffeqsolve(term, diffrax.Euler(), 0.0, 0.2, 0.1, x)
            return jnp.sum(sol.ys ** 2)
        args = (jnp.asarray(X),)
    """, "K = 3.0", kind="grad", reach=False, jax_keeps_stale_traces=True),
    ModelPattern("optimistix_root_function_reads_a_global", """
        C = 2.0
        def fn(y, a):
            return y - C * jnp.tanh(a)
        solver = optx.Newton(rtol=1e-6, atol=1e-6)
        def f(x):
            return jnp.sum(optx.root_find(fn, solver, jnp.zeros_like(x), args=x).value ** 2)
        args = (jnp.asarray(X),)
    """, "C = 3.0", kind="grad", reach=False, jax_keeps_stale_traces=True),
    ModelPattern("lineax_function_operator_reads_a_global", """
        C = 2.0
        def mv(v):
            return C * v
        def f(x):
            op = lx.FunctionLinearOperator(mv, jax.eval_shape(lambda: x))
            return jnp.sum(lx.linear_solve(op, x).value ** 2)
        args = (jnp.asarray(X),)
    """, "C = 3.0", kind="grad", reach=False, jax_keeps_stale_traces=True),
)

REACH_PATTERNS = tuple(p for p in PATTERNS if p.reach)


@parametrize(PATTERNS)
def test_model_pattern(pattern, prepare):
    check(pattern, prepare)


@parametrize(REACH_PATTERNS, {"jax.jit(T(wrap(f)))": prepare_jit_of_jax_transform})
def test_without_the_new_capture_the_model_pattern_is_stale(pattern, prepare, monkeypatch):
    """The meta-test: with the capture of issue #11 switched off, each model pattern fails."""
    assert_stale_without_reach(pattern, prepare, monkeypatch)


@parametrize(REACH_PATTERNS, {k: v for k, v in PREPARATIONS.items()
                              if v is not prepare_jit_of_jax_transform})
@pytest.mark.slow
def test_without_the_new_capture_the_model_pattern_is_stale_other_preparations(
        pattern, prepare, monkeypatch):
    assert_stale_without_reach(pattern, prepare, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("pattern", [p for p in PATTERNS if not p.jax_keeps_stale_traces], ids=str)
def test_the_check_passes_for_plain_jax_traced_fresh(pattern):
    """The harness itself: plain JAX traced anew at each call passes every check."""
    check(pattern, prepare_plain_jax_traced_fresh)


@pytest.mark.parametrize("pattern", [p for p in PATTERNS if p.jax_keeps_stale_traces], ids=str)
def test_plain_jax_traced_fresh_is_stale_where_jax_keeps_stale_traces(pattern):
    """Where a row says JAX keeps stale traces, plain JAX traced anew at each call does give the
    old world's answer (so jaxworld's right answer there is better than plain JAX's)."""
    with pytest.raises(AssertionError, match="after the advance"):
        check(pattern, prepare_plain_jax_traced_fresh)


REALISTIC_GLOBALS = """
    import logging
    logger = logging.getLogger("jaxworld.tests.reach_models")
    config = {"scale": 2.0, "learning_rate": 1e-2, "name": "mlp", "sizes": [3, 4, 3]}
    keys = jax.random.split(jax.random.key(0), 3)
    mlp = eqx.nn.MLP(3, 3, 4, 2, activation=jax.nn.tanh, key=keys[0])
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(config["learning_rate"]))
    opt_state = optimizer.init(jnp.zeros(3))
    arrays = [jax.random.normal(k, (3,)) for k in keys[1:]]
    def f(x):
        logger.debug("tracing f with %s", config["name"])
        h = mlp(x)
        updates, _ = optimizer.update(h, opt_state)
        noise = jax.random.normal(keys[2], (3,))
        total = sum(jnp.sum(a * x) for a in arrays)
        return (config["scale"] * jnp.sum(h ** 2) + jnp.sum(updates * x)
                + jnp.sum(noise * x ** 3) + total)
"""


def test_noop_advance_retraces_nothing_with_realistic_globals():
    """A logger, a config dict, an eqx MLP, an optax transform, PRNG keys and a list of arrays
    read at trace time: advances that change nothing re-trace and re-compile nothing."""
    gc.collect()
    jaxworld.advance()  # absorb changes left by earlier tests (the JAX user context is global)
    ns = notebook(REALISTIC_GLOBALS, {**LIBRARIES, "jax": jax, "jnp": jnp})
    w = jaxworld.wrap(ns["f"])
    H = jaxworld.hessian(w)
    outer_traces = []

    def outer(x):
        outer_traces.append(1)
        return jax.hessian(w)(x)

    P = jax.jit(outer)
    E = jax.hessian(w)
    assert_noop_advances_change_nothing(ns, w, H, P, E, outer_traces)
