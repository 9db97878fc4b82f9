"""The bad-input catalogue (issue #7, item 5): each kind of mistake gives an exception of the right
type whose message names the API, what was wrong and the fix. Where JAX's own error is already the
right one, it passes through unchanged (same type and text as plain JAX)."""

from __future__ import annotations

import gc
import re
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook


def sq(x):
    return jnp.sum(x ** 2)


def _plain_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


def _same_error_as_jax(ours, plain):
    """jaxworld raises exactly what plain JAX raises for the same mistake."""
    kind, text = _plain_error(plain)
    with pytest.raises(kind, match=re.escape(text.splitlines()[0])):
        ours()


def test_01_wrap_not_a_callable():
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.wrap: expected a callable (a function, lambda, bound method, "
            "functools.partial or an object with __call__), got int 3. Usage: "
            "`jaxworld.wrap(f)` or `@jaxworld.wrap`.")):
        jaxworld.wrap(3)


@pytest.mark.parametrize("api", ["grad", "hessian", "hvp", "jacfwd", "jacrev", "value_and_grad"])
def test_02_operator_of_not_a_callable(api):
    with pytest.raises(TypeError, match=re.escape(
            f"jaxworld.{api}: expected a callable to differentiate, got str 'abc'. "
            f"Usage: `jaxworld.{api}(f)(x)`.")):
        getattr(jaxworld, api)("abc")


def test_03_jit_of_not_a_callable():
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.jit: expected a callable, got NoneType None. Usage: `jaxworld.jit(f)`.")):
        jaxworld.jit(None)


@pytest.mark.parametrize("where", ["wrap", "set_policy", "policy"])
def test_04_unknown_policy(where):
    expected = re.escape(f"jaxworld.{where}: unknown policy 'sometimes'. Expected one of "
                         "'retrace', 'warn', 'error', 'frozen'.")
    with pytest.raises(ValueError, match=expected):
        if where == "wrap":
            jaxworld.wrap(sq, policy="sometimes")
        elif where == "set_policy":
            jaxworld.set_policy("sometimes")
        else:
            with jaxworld.policy("sometimes"):
                pass
    assert jaxworld.get_policy() == "retrace"  # nothing was changed by the failed call


def test_05_unknown_hessian_mode():
    with pytest.raises(ValueError, match=re.escape(
            "jaxworld.hessian: unknown mode 'fwd_fwd'. Expected one of 'fwd_over_rev', "
            "'rev_over_rev', 'fwd_over_fwd', 'rev_over_fwd'")):
        jaxworld.hessian(sq, mode="fwd_fwd")


def test_06_object_array_argument_named_by_key_path():
    # Non-array leaves are static (issue #14); a NumPy array JAX cannot take is an error that
    # names every such leaf by its key path, as JAX does.
    bad = {"w": np.array([object()]), "b": [jnp.ones(2), np.array(["a"])]}
    # (Under jax.grad / jax.jit, JAX itself rejects such a leaf before jaxworld sees it.)
    for wrapped in (jaxworld.wrap(sq), jaxworld.wrap(sq, static_scalars=True)):
        with pytest.raises(TypeError, match=re.escape(
                "jaxworld.wrap: sq got 2 argument leaves that look like arrays but are not valid "
                "JAX values:\n  args[0]['b'][1]: ndarray array(['a'], dtype='<U1') (Dtype <U1 is "
                "not a valid JAX array type.")) as info:
            wrapped(bad)
        assert "args[0]['w']: ndarray array([<object object at" in str(info.value)
        assert "Pass an array (e.g. `jnp.asarray(x)`)" in str(info.value)


def test_07_string_argument_is_static():
    # A string is a static leaf, not an error: the function sees it, as it would in Python.
    def scaled(x, how):
        return getattr(jnp, how)(x)

    f = jaxworld.wrap(scaled)
    x = jnp.linspace(0.1, 1.0, 3)
    for how in ("sin", "cos", "sin"):
        assert_trees_close(f(x, how), jax.jit(lambda v, how=how: scaled(v, how))(x))
    assert jaxworld.stats(f)["traces"] == 2  # one per static value, like static_argnums
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.wrap: sq got an argument leaf that looks like an array but is not a valid "
            "JAX value:\n  args[0]: int 1180591620717411303424 (Python int")):
        jaxworld.wrap(sq)(2 ** 70)


def test_08_integer_input_to_grad_is_jax_error():
    x = jnp.arange(3)
    _same_error_as_jax(lambda: jaxworld.grad(sq)(x), lambda: jax.grad(sq)(x))
    with pytest.raises(TypeError, match=re.escape("grad requires real- or complex-valued inputs")):
        jaxworld.grad(sq)(x)


def test_09_non_scalar_output_to_grad_is_jax_error():
    f = lambda x: x * 2.0  # noqa: E731
    _same_error_as_jax(lambda: jaxworld.grad(f)(jnp.ones(3)), lambda: jax.grad(f)(jnp.ones(3)))
    with pytest.raises(TypeError, match=re.escape(
            "Gradient only defined for scalar-output functions. Output had shape: (3,).")):
        jax.grad(jaxworld.wrap(f))(jnp.ones(3))


def test_10_non_scalar_output_to_hessian_is_a_jacobian_like_jax():
    # jax.hessian accepts non-scalar outputs (jacfwd(jacrev(f))); so does jaxworld, with JAX's
    # answer: not an error to "improve".
    f = lambda x: jnp.sin(x) * x  # noqa: E731
    assert_trees_close(jaxworld.hessian(f)(jnp.ones(3)), jax.hessian(f)(jnp.ones(3)))


def test_11_none_output_to_grad_is_jax_error():
    f = lambda x: None  # noqa: E731
    _same_error_as_jax(lambda: jaxworld.grad(f)(1.0), lambda: jax.grad(f)(1.0))


def test_12_unhashable_static_argument():
    f = jaxworld.wrap(lambda x, n: x * len(n), static_argnums=1)
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.wrap: <lambda> got an unhashable static argument:\n"
            "  args[1]: list [1, 2]\n"
            "Expected hashable values (static arguments key the trace cache). Make the argument "
            "non-static: only its array leaves are traced")):
        f(1.0, [1, 2])
    assert float(f(1.0, (1, 2))) == 2.0


def test_13_static_argnums_out_of_range():
    with pytest.raises(ValueError, match=re.escape(
            "jaxworld.wrap: static_argnums=(5,) of <lambda>, but <lambda> accepts 1 positional "
            "argument(s) (valid positions: 0..0 or -1..-1).")):
        jaxworld.wrap(lambda x: x, static_argnums=5)


def test_14_static_argnums_not_ints():
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.wrap: static_argnums must be an int or a sequence of ints (argument "
            "positions), got 'a'. Use static_argnames= for names.")):
        jaxworld.wrap(lambda x: x, static_argnums="a")


def test_15_hvp_mismatched_pytrees():
    hv = jaxworld.hvp(lambda p: jnp.sum(p["a"] ** 2))
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.hvp: the vector v must have the same pytree structure as x.")):
        hv({"a": jnp.ones(2)}, jnp.ones(2))


def test_16_hvp_mismatched_shapes():
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.hvp: v's leaves must have x's shapes; got an x leaf of shape (2,) and a v "
            "leaf of shape (3,).")):
        jaxworld.hvp(sq)(jnp.ones(2), jnp.ones(3))


def test_17_leaked_tracer_is_jax_error():
    leaked = []

    def leak(x):
        leaked.append(x)
        return x * 2.0

    jax.jit(jaxworld.wrap(leak))(1.0)
    with pytest.raises(jax.errors.UnexpectedTracerError,
                       match=re.escape("Encountered an unexpected tracer.")):
        jnp.sin(leaked[0])


def test_18_recursion():
    ns = notebook("""
        def r(x):
            return rec(x) + 1.0
    """, {"jnp": jnp})
    ns["rec"] = jaxworld.wrap(ns["r"])
    with pytest.raises(RecursionError, match=re.escape(
            "jaxworld.wrap: r calls itself (with the same input signature) while it is being "
            "traced. A wrapped function cannot recurse through Python; express the recursion "
            "with jax.lax.while_loop / fori_loop / scan")):
        ns["rec"](1.0)
    entry, = ns["rec"]._entries.values()
    assert not entry.tracing and entry.closure is None  # consistent after the error


def test_19_deleted_origin_helper():
    """An origin whose helper was deleted: after advance the re-trace raises Python's NameError
    naming it, the old closure stays, and defining it again recovers. A closure or pullback keeps
    its wrapped function (and so its origin) alive: an origin cannot be collected under them."""
    ns = notebook("""
        def g(x):
            return jnp.sin(x)

        def f(x):
            return jnp.sum(g(x))
    """)
    wf = jaxworld.wrap(ns["f"])
    x = jnp.ones(2)
    _, pullback = jaxworld.vjp(wf, x)
    del ns["g"]
    jaxworld.advance()
    with pytest.raises(NameError, match=re.escape("name 'g' is not defined")):
        wf(x)
    with pytest.raises(NameError, match=re.escape("name 'g' is not defined")):
        pullback(1.0)
    origin_ref = weakref.ref(ns["f"])
    del ns["f"]
    gc.collect()
    assert origin_ref() is wf.__wrapped__  # kept alive by the wrapped function
    notebook("def g(x):\n    return jnp.cos(x)\n", ns)
    jaxworld.advance()
    assert_trees_close(wf(x), jnp.sum(jnp.cos(x)))
    assert_trees_close(pullback(1.0)[0], -jnp.sin(x))


def test_20_opaque_closure_wrong_number_of_arguments():
    closure = jax.make_jaxpr(jaxworld.wrap(sq))(jnp.ones(2)).eqns[0].params["closure"]
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.OpaqueClosure sq takes 1 array argument(s) (f32[2]), got 2.")):
        closure(jnp.ones(2), jnp.ones(2))


def test_21_opaque_closure_wrong_shape():
    closure = jax.make_jaxpr(jaxworld.wrap(sq))(jnp.ones(2)).eqns[0].params["closure"]
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.OpaqueClosure sq: argument 0 must be f32[2], got f32[3] (signature "
            "(f32[2]) -> (f32[])).")):
        closure(jnp.ones(3))


def test_22_vjp_cotangent_of_wrong_structure():
    _, pullback = jaxworld.vjp(lambda x: (jnp.sum(x), x), jnp.ones(2))
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.vjp: the pullback of <lambda> expects a cotangent structured like the "
            "primal output PyTreeDef((*, *)), got PyTreeDef(*).")):
        pullback(1.0)


def test_23_vjp_cotangent_of_wrong_shape():
    _, pullback = jaxworld.vjp(lambda x: (jnp.sum(x), x), jnp.ones(2))
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.vjp: the pullback of <lambda> expects cotangent leaf 1 shaped like the "
            "primal output, (2,); got shape (3,).")):
        pullback((1.0, jnp.ones(3)))


def test_24_jvp_primals_not_a_tuple():
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.jvp: primals and tangents must be tuples (or lists) of arguments, like "
            "jax.jvp; got ArrayImpl and ArrayImpl. Write jaxworld.jvp(f, (x,), (v,)).")):
        jaxworld.jvp(sq, jnp.ones(2), jnp.ones(2))


def test_25_jvp_tangent_of_wrong_dtype_or_shape_is_jax_error():
    x = jnp.ones(2)
    _same_error_as_jax(lambda: jaxworld.jvp(sq, (x,), (jnp.ones(2, jnp.int32),)),
                       lambda: jax.jvp(sq, (x,), (jnp.ones(2, jnp.int32),)))
    _same_error_as_jax(lambda: jax.jvp(jaxworld.wrap(sq), (x,), (jnp.ones(3),)),
                       lambda: jax.jvp(sq, (x,), (jnp.ones(3),)))


def test_26_wrong_number_of_arguments_to_wrapped_function_is_pythons_error():
    _same_error_as_jax(lambda: jaxworld.wrap(sq)(jnp.ones(2), jnp.ones(2)),
                       lambda: jax.jit(sq)(jnp.ones(2), jnp.ones(2)))


def test_27_argnums_out_of_range_is_jax_error():
    _same_error_as_jax(lambda: jaxworld.grad(sq, argnums=3)(jnp.ones(2)),
                       lambda: jax.grad(sq, argnums=3)(jnp.ones(2)))


def test_28_vmap_inconsistent_sizes_is_jax_error():
    add = lambda a, b: a + b  # noqa: E731
    _same_error_as_jax(lambda: jax.vmap(jaxworld.wrap(add))(jnp.ones(2), jnp.ones(3)),
                       lambda: jax.vmap(add)(jnp.ones(2), jnp.ones(3)))


def test_29_implicit_rank_promotion_is_jax_error():
    add = lambda a, b: a + b  # noqa: E731
    _same_error_as_jax(lambda: jaxworld.wrap(add)(jnp.ones(2), jnp.ones((2, 2))),
                       lambda: jax.jit(add)(jnp.ones(2), jnp.ones((2, 2))))


def test_30_concretization_inside_wrapped_function_is_jax_error():
    f = lambda x: jnp.ones(3) if x > 0 else jnp.zeros(3)  # noqa: E731
    with pytest.raises(jax.errors.TracerBoolConversionError,
                       match=re.escape("Attempted boolean conversion of traced array")):
        jaxworld.wrap(f)(1.0)


class _Scaled:
    """A pytree node whose unflatten computes on its children (against JAX's pytree contract)."""

    def __init__(self, v):
        self.v = v


jax.tree_util.register_pytree_node(_Scaled, lambda s: ((s.v,), None),
                                   lambda aux, children: _Scaled(children[0] * 2.0))


def test_31_pytree_unflatten_that_computes_on_its_children():
    # Plain JAX happens to accept it here (it unflattens with tracers); jaxworld rebuilds each
    # signature's arguments with abstract leaves, as JAX may, and says what to change.
    assert float(jax.jit(lambda s: jnp.sum(s.v))(_Scaled(jnp.ones(2)))) == 4.0
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.wrap: the arguments' pytree could not be rebuilt with abstract leaves: a "
            "pytree node's unflatten function raised TypeError")) as info:
        jaxworld.wrap(lambda s: jnp.sum(s.v))(_Scaled(jnp.ones(2)))
    message = str(info.value)
    assert "Expected an unflatten that stores its children as given" in message
    assert "Fix: store the children unchanged in unflatten" in message
    assert isinstance(info.value.__cause__, TypeError)
