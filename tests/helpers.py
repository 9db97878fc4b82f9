"""Shared test bodies and the one tolerance helper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxworld.testing import World, _references


def tolerance(dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing results of this dtype with the plain-JAX oracle.

    jaxworld's one tolerance table (`jaxworld.testing._references`): float32 results of nested
    AD differ from plain JAX only by reassociation inside XLA, float64 much less.
    """
    return _references.tolerance(dtype, "jax")


def assert_trees_close(actual, expected, *, rtol=None, atol=None):
    """Same pytree structure, shapes and dtypes, and values within the dtype's tolerance."""
    a_leaves, a_tree = jax.tree_util.tree_flatten(actual)
    e_leaves, e_tree = jax.tree_util.tree_flatten(expected)
    assert a_tree == e_tree, f"tree structure differs: {a_tree} vs {e_tree}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"shape {a.shape} vs {e.shape}"
        assert a.dtype == e.dtype, f"dtype {a.dtype} vs {e.dtype}"
        d_rtol, d_atol = tolerance(a.dtype)
        np.testing.assert_allclose(a, e, rtol=d_rtol if rtol is None else rtol,
                                   atol=d_atol if atol is None else atol)


def notebook(source: str, namespace: dict | None = None, *, filename: str | None = None) -> dict:
    """Run `source` like a notebook cell in `namespace` (a fresh one holding jax, jnp and np by
    default) and return it: `jaxworld.testing.World.define` in that namespace."""
    ns = {"jax": jax, "jnp": jnp, "np": np} if namespace is None else namespace
    World("cell", namespace=ns).define(source, filename=filename)
    return ns


def primitive_names(jaxpr) -> list[str]:
    """Names of the top-level primitives of a (closed) jaxpr."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    return [eqn.primitive.name for eqn in jaxpr.eqns]


# -- A catalogue of test functions shared by the transformation-family tests (issue #2) ---------
# Each `Case` is a plain Python function plus a builder of small inputs in the current x64
# setting. Tests apply one JAX transformation to `case.fun` (the oracle, traced fresh) and to
# `case.wrap()` and compare with `assert_trees_close`.

import dataclasses  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from jax import lax  # noqa: E402

import jaxworld  # noqa: E402


def float_dtype():
    """The default float dtype in the current x64 setting."""
    return jnp.result_type(float)


def vector(n: int = 4, lo: float = 0.2, hi: float = 1.1):
    return jnp.linspace(lo, hi, n, dtype=float_dtype())


def elementwise(x):
    return jnp.sin(x) * jnp.exp(0.5 * x) + x ** 3


def reductions(x):
    return jnp.sum(jnp.tanh(x) ** 2) + jnp.mean(x * jnp.cos(x)) + jax.nn.logsumexp(x)


def mlp(params, x):
    h = x
    for layer in params["layers"]:
        h = jnp.tanh(layer["W"] @ h + layer["b"])
    return jnp.sum(h ** 2) + 0.1 * params["scale"] * jnp.sum(x * x)


def mlp_params(sizes=(3, 4, 2), seed: int = 0):
    rng = np.random.default_rng(seed)
    dtype = float_dtype()
    layers = [{"W": jnp.asarray(rng.normal(size=(m, n)) / np.sqrt(n), dtype=dtype),
               "b": jnp.asarray(rng.normal(size=(m,)) * 0.1, dtype=dtype)}
              for n, m in zip(sizes[:-1], sizes[1:], strict=True)]
    return {"layers": layers, "scale": jnp.asarray(1.5, dtype=dtype)}


def scan_fn(x):
    def body(carry, xi):
        carry = carry * jnp.sin(xi) + xi ** 2
        return carry, carry * xi

    carry, ys = lax.scan(body, x[0], x[1:])
    return carry + jnp.sum(ys)


def cond_fn(x):
    # The predicate depends on x; `vector()` takes the false branch, `vector() + 1` the true one.
    return lax.cond(x[0] > 0.5,
                    lambda y: jnp.sum(jnp.sin(y) ** 2 * y),
                    lambda y: jnp.sum(jnp.cos(y) * y ** 2),
                    x)


def fori_fn(x):
    # Static trip count: lowered to a scan, so reverse mode works as in plain JAX.
    return jnp.sum(lax.fori_loop(0, 3, lambda i, c: jnp.sin(c) * x + 0.5 * c, x))


@jax.custom_jvp
def softplus(x):
    return jnp.log1p(jnp.exp(x))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), jax.nn.sigmoid(x) * t


def custom_jvp_fn(x):
    return jnp.sum(softplus(x) * x)


def int_arg_fn(x, n):
    return jnp.sum(x ** 2 * n + jnp.sin(x * n))


def static_power(x, k):
    return jnp.sum(x ** k) + k * jnp.sum(jnp.sin(x))


def holomorphic_fn(z):
    return jnp.sum(jnp.sin(z) * z ** 2 + jnp.exp(0.5 * z))


def complex_vector(n: int = 3):
    return vector(n) + 1j * vector(n, 0.3, -0.4)


@dataclasses.dataclass(frozen=True)
class Case:
    """A function and its inputs. `argnums` are the differentiated arguments."""

    name: str
    fun: Callable
    make_args: Callable[[], tuple]
    argnums: int | tuple = 0
    static_argnums: tuple = ()
    holomorphic: bool = False
    scalar: bool = True  # output is a real or complex scalar (grad / hessian apply)

    def __str__(self) -> str:
        return self.name

    def args(self) -> tuple:
        return self.make_args()

    def wrap(self):
        return jaxworld.wrap(self.fun, static_argnums=self.static_argnums)

    def jit(self, f):
        return jax.jit(f, static_argnums=self.static_argnums)

    def grad(self, f, **kw):
        return jax.grad(f, argnums=self.argnums, holomorphic=self.holomorphic, **kw)

    def hessian(self, f):
        return jax.hessian(f, argnums=self.argnums, holomorphic=self.holomorphic)

    def on_diff_args(self, f, args):
        """(g, diff_args): `g(*diff_args) == f(*args)` with the other arguments closed over."""
        argnums = (self.argnums,) if isinstance(self.argnums, int) else tuple(self.argnums)
        diff_args = tuple(args[i] for i in argnums)

        def g(*d):
            full = list(args)
            for i, v in zip(argnums, d, strict=False):
                full[i] = v
            return f(*full)

        return g, diff_args


CASES = (
    Case("elementwise", elementwise, lambda: (vector(),), scalar=False),
    Case("reductions", reductions, lambda: (vector(),)),
    Case("mlp", mlp, lambda: (mlp_params(), vector(3))),  # differentiated in the pytree params
    Case("mlp_x", mlp, lambda: (mlp_params(), vector(3)), argnums=1),
    Case("scan", scan_fn, lambda: (vector(),)),
    Case("cond", cond_fn, lambda: (vector(),)),
    Case("cond_true", cond_fn, lambda: (vector() + 1,)),
    Case("fori_loop", fori_fn, lambda: (vector(3),)),
    Case("custom_jvp", custom_jvp_fn, lambda: (vector(),)),
    Case("int_arg", int_arg_fn, lambda: (vector(), jnp.arange(1, 5))),
    Case("static_arg", static_power, lambda: (vector(), 3), static_argnums=(1,)),
    Case("holomorphic", holomorphic_fn, lambda: (complex_vector(),), holomorphic=True),
)
SCALAR_CASES = tuple(c for c in CASES if c.scalar)
REAL_CASES = tuple(c for c in CASES if not c.holomorphic)


def check_against_jax(case: Case, transforms, *, jit: bool = True, rtol=None, atol=None) -> Any:
    """Each transformation of the wrapped and of the plain function agrees on `case.args()`.

    `transforms` is one `transform(f, case) -> callable` or a dict name -> transform. With `jit`
    (the default) all of them run inside one `jax.jit` (one compilation for the whole family, so
    the suite stays fast); `jit=False` runs them eagerly (the `world_call` impl rule).

    Returns the wrapped results (a dict name -> result, or the single result).
    """
    single = callable(transforms)
    table = {"result": transforms} if single else dict(transforms)

    def combined(f):
        def run(*args):
            return {name: transform(f, case)(*args) for name, transform in table.items()}
        return case.jit(run) if jit else run

    args = case.args()
    expected = combined(case.fun)(*args)
    actual = combined(case.wrap())(*args)
    for name in table:
        try:
            assert_trees_close(actual[name], expected[name], rtol=rtol, atol=atol)
        except AssertionError as e:
            raise AssertionError(f"{case.name}: {name} differs from plain JAX: {e}") from None
    return actual["result"] if single else actual


def tangents_like(tree):
    """Deterministic, non-trivial tangents (or cotangents) shaped like `tree`."""
    return jax.tree.map(lambda a: jnp.cos(1.3 * a + 0.4).astype(jnp.result_type(a)), tree)


def perturbed(tree, k: int):
    """A variant of `tree` for batch element `k` (integer leaves are shifted, floats scaled)."""
    def one(a):
        a = jnp.asarray(a)
        if jnp.issubdtype(a.dtype, jnp.integer):
            return a + k
        return a * (1 + 0.15 * k) + 0.05 * k
    return jax.tree.map(one, tree)


def stacked(tree, size: int = 3, axis: int = 0):
    """`size` perturbed copies of `tree` stacked along `axis`."""
    copies = [perturbed(tree, k) for k in range(size)]
    return jax.tree.map(lambda *xs: jnp.stack(xs, axis=axis), *copies)


def composite_fn(x):
    """scan + cond + a custom_jvp helper in one function (for finite-difference checks)."""
    def body(carry, xi):
        carry = lax.cond(xi > 0.5, lambda c: softplus(c) * xi, lambda c: jnp.sin(c) + xi, carry)
        return carry, carry ** 2

    carry, ys = lax.scan(body, x[0], x)
    return carry + jnp.sum(ys)


def x64_matrix(items, name=str):
    """Parameters ``(item, x64)`` for `@pytest.mark.parametrize("item,x64", ..., indirect=["x64"])`.

    Every item runs under both `jax_enable_x64` settings. To keep the default run fast, each item
    runs under one of them by default — alternating, so both settings and every item are covered
    — and under the other with ``-m slow``.
    """
    import pytest

    params = []
    for i, item in enumerate(items):
        for flag in (False, True):
            marks = () if flag == bool(i % 2) else (pytest.mark.slow,)
            params.append(pytest.param(item, flag, marks=marks,
                                       id=f"{'x64' if flag else 'x32'}-{name(item)}"))
    return params
