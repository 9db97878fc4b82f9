"""The `jaxworld.wrap` API: call and decorator forms, pytrees, keyword and static arguments,
metadata, any kind of callable, one closure per input signature, and clear errors (issue #2)."""

import collections
import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import assert_trees_close, mlp, mlp_params, vector


def _closure(wrapped, *args, **kwargs):
    """The `OpaqueClosure` a call with these arguments binds."""
    eqns = jax.make_jaxpr(functools.partial(wrapped, **kwargs))(*args).eqns
    assert [e.primitive.name for e in eqns] == ["world_call"]
    return eqns[0].params["closure"]


def _scaled_sum(x, scale=2.0):
    """Docstring of _scaled_sum."""
    return jnp.sum(x) * scale


def test_call_form_and_decorator_forms(x64):
    x = vector()

    @jaxworld.wrap
    def plain_decorator(x):
        return jnp.sin(x)

    @jaxworld.wrap(static_argnums=1)
    def decorator_with_arguments(x, k):
        return x ** k

    assert_trees_close(jaxworld.wrap(jnp.sin)(x), jnp.sin(x))
    assert_trees_close(plain_decorator(x), jnp.sin(x))
    assert_trees_close(decorator_with_arguments(x, 3), x ** 3)
    assert_trees_close(jax.grad(lambda x: jnp.sum(decorator_with_arguments(x, 3)))(x), 3 * x ** 2)


def test_functools_wraps_metadata():
    wf = jaxworld.wrap(_scaled_sum)
    assert wf.__name__ == "_scaled_sum"
    assert wf.__qualname__ == "_scaled_sum"
    assert wf.__doc__ == "Docstring of _scaled_sum."
    assert wf.__module__ == __name__
    assert wf.__wrapped__ is _scaled_sum
    assert _closure(wf, vector()).origin is _scaled_sum


Point = collections.namedtuple("Point", ["x", "y"])


def test_pytrees_in_and_out(x64):
    def f(tree, pair):
        a, (b, c) = pair
        return {"sum": tree["u"] + a, "list": [tree["v"].x * b, tree["v"].y], "none": None,
                "nested": Point(c, jnp.arange(3))}

    wf = jaxworld.wrap(f)
    tree = {"u": vector(), "v": Point(vector(2), jnp.int32(7))}
    pair = (vector(), (1.5, vector(3)))
    assert_trees_close(wf(tree, pair), f(tree, pair))
    assert_trees_close(jax.jit(wf)(tree, pair), f(tree, pair))
    # Gradient with respect to a pytree argument, through a pytree output.
    loss = lambda f: lambda t: jnp.sum(f(t, pair)["sum"] ** 2)  # noqa: E731
    float_tree = {"u": vector(), "v": Point(vector(2), jnp.int32(7))}
    actual = jax.grad(loss(wf), allow_int=True)(float_tree)
    expected = jax.grad(loss(f), allow_int=True)(float_tree)
    assert_trees_close(actual["u"], expected["u"])
    assert_trees_close(actual["v"].x, expected["v"].x)


def test_keyword_arguments_and_defaults(x64):
    wf = jaxworld.wrap(_scaled_sum)
    x = vector()
    assert_trees_close(wf(x), _scaled_sum(x))
    assert_trees_close(wf(x, scale=3.0), _scaled_sum(x, scale=3.0))
    assert_trees_close(wf(x=x, scale=jnp.asarray(0.5)), _scaled_sum(x, 0.5))
    assert_trees_close(jax.grad(wf, argnums=0)(x, scale=3.0), jax.grad(_scaled_sum)(x, scale=3.0))
    # A keyword argument is a traced input, not a constant: its gradient flows.
    assert_trees_close(jax.grad(lambda s: wf(x, scale=s))(2.0),
                       jax.grad(lambda s: _scaled_sum(x, s))(2.0))


def test_static_argnums_and_argnames(x64):
    def f(x, n, *, mode):
        return jnp.sum(x ** n) if mode == "pow" else jnp.sum(jnp.sin(x) * n)

    wf = jaxworld.wrap(f, static_argnums=1, static_argnames="mode")
    x = vector()
    for n, mode in ((2, "pow"), (3, "pow"), (2, "sin")):
        assert_trees_close(wf(x, n, mode=mode), f(x, n, mode=mode))
        assert_trees_close(jax.grad(wf)(x, n, mode=mode), jax.grad(f)(x, n, mode=mode))
    # Negative positions count from the end, as in jax.jit.
    wneg = jaxworld.wrap(lambda x, n: jnp.sum(x ** n), static_argnums=-1)
    assert_trees_close(wneg(x, 3), jnp.sum(x ** 3))
    # Static by name given positionally (resolved through the signature, as in jax.jit).
    wname = jaxworld.wrap(lambda x, n: jnp.sum(x ** n), static_argnames="n")
    assert_trees_close(wname(x, 2), jnp.sum(x ** 2))
    assert jaxworld.stats(wname)["traces"] == 1


class Affine:
    """A callable object (like an equinox Module): parameters are attributes."""

    def __init__(self, w):
        self.w = w

    def __call__(self, x):
        return jnp.tanh(self.w * x)

    def energy(self, x):
        return jnp.sum(self(x) ** 2)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Module:
    """A pytree-registered callable object, as equinox Modules are."""

    weight: jax.Array

    def __call__(self, x):
        return jnp.sum(jnp.sin(self.weight * x))


def test_any_kind_of_callable(x64):
    x = vector()
    affine = Affine(1.7)
    callables = {
        "lambda": (lambda x: jnp.sum(jnp.exp(-x ** 2))),
        "bound method": affine.energy,
        "partial": functools.partial(_scaled_sum, scale=4.0),
        "callable object": affine,
        "pytree module": Module(vector() * 0.5),
        "builtin ufunc": jnp.cos,
    }
    for kind, fun in callables.items():
        wf = jaxworld.wrap(fun)
        assert _closure(wf, x).origin is fun, kind
        assert_trees_close(wf(x), fun(x))
        assert_trees_close(jax.jit(jax.jacrev(wf))(x), jax.jit(jax.jacrev(fun))(x))
    # A pytree module passed as an argument is differentiated like any pytree.
    module = Module(vector() * 0.5)
    call = jaxworld.wrap(lambda m, x: m(x))
    assert_trees_close(jax.grad(call)(module, x), jax.grad(lambda m, x: m(x))(module, x))


def test_one_closure_per_input_signature(x64):
    wf = jaxworld.wrap(lambda x, k=1: jnp.sum(x * k), static_argnames="k")
    x = vector()
    c = _closure(wf, x)
    # Same signature (other values): the same closure, no new trace.
    assert _closure(wf, x + 1.0) is c
    assert jaxworld.stats(wf)["traces"] == 1
    different = {
        "shape": _closure(wf, vector(5)),
        "dtype": _closure(wf, x.astype(jnp.float16)),
        "weak type": _closure(wf, 1.0),
        "strong scalar": _closure(wf, jnp.asarray(1.0, dtype=x.dtype)),
        "rank": _closure(wf, x[None]),
        "static value": _closure(wf, x, k=2),
    }
    closures = [c, *different.values()]
    assert len({id(cl) for cl in closures}) == len(closures)
    assert jaxworld.stats(wf)["traces"] == len(closures)
    assert different["weak type"].in_avals[0].weak_type
    assert not different["strong scalar"].in_avals[0].weak_type
    # Asking again for each signature reuses its closure.
    assert _closure(wf, 2.0) is different["weak type"]
    assert _closure(wf, x, k=2) is different["static value"]
    assert jaxworld.stats(wf)["traces"] == len(closures)


def test_tree_structure_is_part_of_the_signature(x64):
    wf = jaxworld.wrap(lambda t: jax.tree.reduce(lambda a, b: a + jnp.sum(b), t, 0.0))
    x = vector()
    a, b = _closure(wf, (x, x)), _closure(wf, [x, x])
    assert a is not b and a.in_avals == b.in_avals
    assert_trees_close(wf({"p": x, "q": 2 * x}), 3 * jnp.sum(x))


def test_closure_attributes_and_call(x64):
    x = vector()
    c = _closure(jaxworld.wrap(_scaled_sum), x)
    assert c.derivation is None and c.epoch == jaxworld.epoch()
    assert c.in_avals == (jax.core.ShapedArray(x.shape, x.dtype),)
    assert c.out_avals[0].shape == ()
    assert_trees_close(c(x), _scaled_sum(x))
    assert_trees_close(jax.jit(c)(x), _scaled_sum(x))


def test_non_callable_fun_is_a_type_error():
    expected = ("jaxworld.wrap: expected a callable (a function, lambda, bound method, "
                "functools.partial or an object with __call__), got int 3. Usage: "
                "`jaxworld.wrap(f)` or `@jaxworld.wrap`.")
    with pytest.raises(TypeError, match=re.escape(expected)):
        jaxworld.wrap(3)
    with pytest.raises(TypeError, match=re.escape("got list [1, 2]")):
        jaxworld.wrap(static_argnums=0)([1, 2])


def test_every_unhashable_static_argument_is_named_in_one_type_error():
    def f(x, n, m=(), *, k=()):
        return x * (len(n) + len(m) + len(k))

    wf = jaxworld.wrap(f, static_argnums=(1, 2), static_argnames="k")
    expected = ("jaxworld.wrap: f got 3 unhashable static arguments:\n"
                "  args[1]: list [1, 2]\n"
                "  args[2]: dict {'a': 1}\n"
                "  kwargs['k']: set {3}\n"
                "Expected hashable values (static arguments key the trace cache). Make the "
                "argument non-static: only its array leaves are traced, every other leaf "
                "(functions, strings, objects) is static on its own")
    with pytest.raises(TypeError, match=re.escape(expected)):
        wf(vector(), [1, 2], {"a": 1}, k={3})
    # A hashable one among them is not listed.
    with pytest.raises(TypeError, match=re.escape(
            "f got an unhashable static argument:\n  kwargs['k']: list [4]\n")):
        wf(vector(), (1, 2), k=[4])
    assert_trees_close(wf(vector(), (1, 2), k=(3,)), f(vector(), (1, 2), k=(3,)))


def test_non_array_leaf_is_static():
    # issue #14: a non-array leaf is static (held by equality), as in equinox.filter_jit, where
    # jax.jit would reject it.
    def f(x, name):
        return getattr(jnp, name)(x)

    wf = jaxworld.wrap(f)
    for name in ("tanh", "sin", "tanh"):
        assert_trees_close(wf(vector(), name), jax.jit(lambda v, n=name: f(v, n))(vector()))
    assert jaxworld.stats(wf)["traces"] == 2


def test_numpy_and_python_scalar_inputs(x64):
    def f(x, y):
        return x * y + 1

    x = np.linspace(0.0, 1.0, 3)
    assert_trees_close(jaxworld.wrap(f)(x, 2), f(jnp.asarray(x), 2))
    params = mlp_params()
    assert_trees_close(jaxworld.wrap(mlp)(params, np.asarray(vector(3))), mlp(params, vector(3)))
