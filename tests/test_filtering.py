"""Issue #14 without extra libraries: filtering any pytree, methods, explain on containers,
`StaleClosureWarning`, and the eager fast path. The oracle is plain JAX traced fresh (a new
lambda under `jax.jit`); the same checks with equinox, flax, optax, optimistix and blackjax are
in tests/ecosystem.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook, vector


def fresh(fun):
    """Plain JAX traced fresh in the current world: a new lambda under `jax.jit`."""
    return jax.jit(lambda *a: fun(*a))


# -- 1. filtering ----------------------------------------------------------------------------

@dataclasses.dataclass(eq=True)  # eq without frozen: unhashable
class Config:
    scale: float


def model(params, x):
    """A pytree with array leaves and static leaves: functions, a string, None, an object."""
    h = params["act"](x @ params["w"])
    if params["mode"] == "double":
        h = 2.0 * h
    return jnp.sum(params["config"].scale * h ** 2) + (0.0 if params["none"] is None else 1.0)


def make_params(act=jnp.tanh, mode="double", scale=1.5):
    return {"w": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), "act": act, "mode": mode,
            "config": Config(scale), "none": None}


def test_any_pytree_goes_in_static_leaves_are_static():
    f = jaxworld.wrap(model)
    x = vector()
    p = make_params()
    assert_trees_close(f(p, x), fresh(lambda w, x: model({**p, "w": w}, x))(p["w"], x))
    # (jax.grad itself rejects non-array leaves of its argument: eqx.filter_grad is for that,
    # tests/ecosystem. Here the arrays are differentiated through a closure.)
    g = jax.grad(lambda w: f({**p, "w": w}, x))(p["w"])
    assert_trees_close(g, jax.grad(lambda w: model({**p, "w": w}, x))(p["w"]))
    H = jax.jit(jax.hessian(lambda w: f({**p, "w": w}, x)))(p["w"])
    assert_trees_close(H, fresh(jax.hessian(lambda w: model({**p, "w": w}, x)))(p["w"]))


def test_static_leaves_are_part_of_the_signature():
    f = jaxworld.wrap(model)
    x = vector()
    cfg = Config(1.5)
    base = make_params()
    for act, mode in [(jnp.tanh, "double"), (jnp.sin, "double"), (jnp.tanh, "single"),
                      (jnp.tanh, "double")]:
        p = {**base, "act": act, "mode": mode, "config": cfg}
        expected = fresh(lambda w, x, p=p: model({**p, "w": w}, x))(p["w"], x)
        assert_trees_close(f(p, x), expected)
    # tanh/double, sin/double, tanh/single; the fourth call is the first's signature again.
    assert jaxworld.stats(f)["traces"] == 3


def test_unhashable_static_leaf_is_held_by_identity():
    f = jaxworld.wrap(model)
    x = vector()
    one, other = Config(1.5), Config(1.5)  # equal, unhashable, two objects
    p1, p2 = {**make_params(), "config": one}, {**make_params(), "config": other}
    assert_trees_close(f(p1, x), f(p2, x))
    assert jaxworld.stats(f)["traces"] == 2  # by identity: two signatures
    f(p1, x)
    assert jaxworld.stats(f)["traces"] == 2


def test_static_leaves_are_type_aware():
    f = jaxworld.wrap(lambda x, tag: x * (2.0 if tag == 1 else 3.0))
    x = vector()
    a, b = f(x, "a"), f(x, ("a",))
    assert_trees_close(a, 3.0 * x)
    assert_trees_close(b, 3.0 * x)
    assert jaxworld.stats(f)["traces"] == 2


def test_python_scalars_are_traced_by_default_static_on_request():
    def f(x, n):
        return x * n

    traced = jaxworld.wrap(f)
    for n in (2.0, 3.0):
        assert_trees_close(traced(vector(), n), fresh(f)(vector(), n))
    assert jaxworld.stats(traced)["traces"] == 1  # jax.jit's rule: one trace for all floats

    def g(x, flag):
        return jnp.sin(x) if flag else jnp.cos(x)  # Python control flow on a bool

    with pytest.raises(jax.errors.TracerBoolConversionError):
        jaxworld.wrap(g)(vector(), True)
    static = jaxworld.wrap(g, static_scalars=True)  # equinox.filter_jit's rule
    for flag in (True, False):
        assert_trees_close(static(vector(), flag), fresh(lambda x, flag=flag: g(x, flag))(vector()))
    assert jaxworld.stats(static)["traces"] == 2


def test_static_outputs_come_back():
    def step(p, x):
        return {**p, "w": p["w"] - 0.1 * jax.grad(lambda w: model({**p, "w": w}, x))(p["w"])}

    p, x = make_params(), vector()
    out = jaxworld.wrap(step)(p, x)
    expected = fresh(lambda w, x: step({**p, "w": w}, x)["w"])(p["w"], x)
    assert_trees_close(out["w"], expected)
    assert out["act"] is jnp.tanh and out["config"] is p["config"] and out["none"] is None
    jitted = jax.jit(lambda w: jaxworld.wrap(step)({**p, "w": w}, x)["w"])(p["w"])
    assert_trees_close(jitted, expected)
    # Only arrays in, a static leaf out (the eager path without filtering of the inputs).
    tagged = jaxworld.wrap(lambda x: {"y": jnp.sin(x), "how": "sin", "act": jnp.tanh})
    out = tagged(x)
    assert out["how"] == "sin" and out["act"] is jnp.tanh
    assert_trees_close(out["y"], fresh(jnp.sin)(x))
    assert_trees_close(jax.jit(lambda x: tagged(x)["y"])(x), fresh(jnp.sin)(x))


def test_errors_name_leaves_by_key_path():
    f = jaxworld.wrap(lambda p: jnp.sum(p["layers"][1]["w"]))
    bad = {"layers": [{"w": jnp.ones(2)}, {"w": np.array(["x", "y"]), "b": jnp.ones(1)}]}
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.wrap: <lambda> got an argument leaf that looks like an array but is not a "
            "valid JAX value:\n  args[0]['layers'][1]['w']: ndarray array(['x', 'y'], "
            "dtype='<U1')")) as info:
        f(bad)
    assert "Pass an array (e.g. `jnp.asarray(x)`)" in str(info.value)
    kw = jaxworld.wrap(lambda *, p: p)
    with pytest.raises(TypeError, match=re.escape("  kwargs['p']: int 1180591620717411303424")):
        kw(p=2 ** 70)


# -- 2. methods --------------------------------------------------------------------------------

def test_method_of_a_plain_class_follows_its_fields_and_class():
    ns = notebook("""
        import jaxworld

        def act(v):
            return jnp.tanh(v)

        class Layer:
            def __init__(self, w):
                self.w = w

            @jaxworld.wrap
            def __call__(self, x):
                return jnp.sum(act(self.w * x) ** 2)

            @jaxworld.wrap
            def energy(self, x):
                return self(x) + self.bias(x)

            def bias(self, x):
                return jnp.sum(x)
    """)
    layer = ns["Layer"](jnp.asarray(2.0))
    x = vector()

    def plain(w, x, act=None, bias=lambda x: jnp.sum(x)):
        act = act or jnp.tanh
        return jnp.sum(act(w * x) ** 2) + bias(x)

    grad_energy = jax.jit(jax.grad(layer.energy))
    assert_trees_close(layer.energy(x), fresh(plain)(2.0, x))
    assert_trees_close(grad_energy(x), fresh(jax.grad(plain, argnums=1))(2.0, x))
    layer.w = jnp.asarray(3.0)  # a field rebound
    jaxworld.advance()
    assert_trees_close(layer.energy(x), fresh(plain)(3.0, x))
    assert_trees_close(grad_energy(x), fresh(jax.grad(plain, argnums=1))(3.0, x))
    ns["Layer"].bias = lambda self, x: jnp.sum(x ** 2)  # the class changed
    jaxworld.advance()
    def square_bias(x):
        return jnp.sum(x ** 2)

    assert_trees_close(layer.energy(x), fresh(lambda w, x: plain(w, x, None, square_bias))(3.0, x))
    notebook("def act(v):\n    return jnp.sin(v)\n", ns)  # a helper the method reads
    jaxworld.advance()
    assert_trees_close(grad_energy(x), fresh(jax.grad(
        lambda w, x: plain(w, x, jnp.sin, square_bias), argnums=1))(3.0, x))
    other = ns["Layer"](jnp.asarray(0.5))  # each instance is its own origin
    assert_trees_close(other(x), fresh(lambda x: jnp.sum(jnp.sin(0.5 * x) ** 2))(x))
    assert ns["Layer"].__call__ is ns["Layer"].__dict__["__call__"]  # unbound: the wrapper


def test_method_of_a_pytree_class_traces_self():
    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Affine:
        w: jax.Array
        b: jax.Array
        act: object = dataclasses.field(metadata=dict(static=True), default=jnp.tanh)

        @jaxworld.wrap
        def __call__(self, x):
            return jnp.sum(self.act(self.w * x + self.b))

    def plain(m, x):
        return jnp.sum(m.act(m.w * x + m.b))

    m = Affine(jnp.asarray(2.0), jnp.asarray(0.5))
    x = vector()
    assert_trees_close(m(x), fresh(plain)(m, x))
    g = jax.grad(lambda m: m(x))(m)  # self is traced: gradients with respect to the fields
    assert_trees_close(g, fresh(jax.grad(plain))(m, x))
    m2 = Affine(jnp.asarray(-1.0), jnp.asarray(0.0))
    assert_trees_close(m2(x), fresh(plain)(m2, x))
    assert jaxworld.stats(Affine.__call__)["traces"] == 1  # one trace for both instances
    m3 = Affine(jnp.asarray(2.0), jnp.asarray(0.5), jnp.sin)  # a static field changed
    assert_trees_close(m3(x), fresh(plain)(m3, x))


def test_static_argnums_on_a_method_count_self():
    class Scaler:
        k = 2.0

        @functools.partial(jaxworld.wrap, static_argnums=2)
        def power(self, x, n):
            return self.k * x ** n

    s = Scaler()
    for n in (2, 3):
        assert_trees_close(s.power(vector(), n), fresh(lambda x, n=n: 2.0 * x ** n)(vector()))


# -- 3. explain on anything that holds wrapped functions -----------------------------------------

def test_explain_looks_through_jit_partial_and_closures():
    ns = notebook("""
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    f = jaxworld.wrap(ns["f"])
    H = jax.jit(jax.hessian(f))  # the README's headline pattern
    H(vector())
    notebook("def g(x):\n    return 3.0 * jnp.cos(x)\n", ns)
    text = jaxworld.explain(H)
    assert text.startswith("PjitFunction ")
    assert "holds 1 jaxworld object(s):" in text
    assert "wrapped function f" in text
    assert "changed since the trace, not yet seen by any world" in text
    assert "global 'g' of module" in text
    scale = jaxworld.wrap(lambda x, a: a * x)
    both = functools.partial(lambda u, x: f(x) + scale(x, u), 2.0)
    text = jaxworld.explain(both)
    assert "partial " in text and "holds 2 jaxworld object(s)" in text
    assert "reached as partial.func (global 'f')" not in text  # f is a closure variable here
    assert "(closure variable 'f')" in text and "(closure variable 'scale')" in text
    op = jaxworld.hvp(f)
    assert "jaxworld operator" in jaxworld.explain([op, {"H": H}])
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.explain: found no wrapped function (jaxworld.wrap), OpaqueClosure or "
            "jaxworld operator in PjitFunction")):
        jaxworld.explain(jax.jit(jnp.sin))


# -- 4. StaleClosureWarning ----------------------------------------------------------------------

def test_stale_closure_warning_is_a_class_attributed_to_the_call_site():
    assert issubclass(jaxworld.StaleClosureWarning, UserWarning)
    ns = notebook("""
        a = 2.0
        def f(x):
            return jnp.sum(a * x ** 3)
    """)
    wf = jaxworld.wrap(ns["f"], policy="warn")
    hess = jax.hessian(wf)
    x = vector()
    hess(x)
    ns["a"] = 3.0
    jaxworld.advance()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _line_of_next_statement()
        got = hess(x)
    assert_trees_close(got, fresh(jax.hessian(lambda x: jnp.sum(3.0 * x ** 3)))(x))
    stale = [w for w in caught if issubclass(w.category, jaxworld.StaleClosureWarning)]
    assert len(stale) == 1, [str(w.message) for w in caught]
    assert stale[0].filename == __file__, stale[0].filename  # not jax/_src/interpreters/ad.py
    assert stale[0].lineno == line + 1
    assert "re-tracing f at epoch" in str(stale[0].message)
    ns["a"] = 3.5
    jaxworld.advance()
    with warnings.catch_warnings(record=True) as caught:  # an eager call (a jax.jit dispatch)
        warnings.simplefilter("always")
        line = _line_of_next_statement()
        got = wf(x)
    assert_trees_close(got, fresh(lambda x: jnp.sum(3.5 * x ** 3))(x))
    [stale] = [w for w in caught if issubclass(w.category, jaxworld.StaleClosureWarning)]
    assert (stale.filename, stale.lineno) == (__file__, line + 1)
    ns["a"] = 4.0
    jaxworld.advance()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=jaxworld.StaleClosureWarning)
        assert_trees_close(hess(x), fresh(jax.hessian(lambda x: jnp.sum(4.0 * x ** 3)))(x))


def _line_of_next_statement() -> int:
    import sys

    return sys._getframe(1).f_lineno


# -- 5. the eager fast path ----------------------------------------------------------------------

@pytest.mark.parametrize("n_leaves", [1, 20, 200])
def test_eager_calls_are_jit_dispatches_that_follow_changes(n_leaves):
    ns = notebook("""
        def act(v):
            return jnp.tanh(v)
        def f(tree):
            return sum(jnp.sum(act(v)) for v in jax.tree_util.tree_leaves(tree))
    """)
    tree = {f"p{i}": jnp.full((2,), 0.01 * i) for i in range(n_leaves)}
    wf = jaxworld.wrap(ns["f"])
    for _ in range(3):
        assert_trees_close(wf(tree), fresh(ns["f"])(tree))
    assert jaxworld.stats(wf)["traces"] == 1 and jaxworld.stats(wf)["compilations"] == 1
    jaxworld.advance()  # nothing changed: no trace, no compile
    wf(tree)
    assert jaxworld.stats(wf)["traces"] == 1 and jaxworld.stats(wf)["compilations"] == 1
    notebook("def act(v):\n    return jnp.sin(v)\n", ns)
    jaxworld.advance()
    assert_trees_close(wf(tree), fresh(ns["f"])(tree))
    assert jaxworld.stats(wf)["traces"] == 2
    with jax.disable_jit():  # the eager path is still plain Python evaluation here
        assert_trees_close(wf(tree), fresh(ns["f"])(tree))


def test_explain_lists_static_leaves_of_each_signature():
    f = jaxworld.wrap(model)
    f(make_params(mode="single"), vector())
    text = jaxworld.explain(f)
    assert "args[0]['mode']='single' (static leaf)" in text
    assert "args[0]['act']=<PjitFunction of <function tanh" in text
