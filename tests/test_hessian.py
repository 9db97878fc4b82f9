"""Second and third order: `hessian` in all four nestings, third derivatives, Hessian-vector
products by jvp of grad, and finite-difference checks to order 3 (issue #2)."""

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

import jaxworld

from .helpers import (
    CASES,
    SCALAR_CASES,
    assert_trees_close,
    check_against_jax,
    composite_fn,
    tangents_like,
    vector,
    x64_matrix,
)


def _nesting(outer, inner):
    def transform(f, c):
        kw = dict(argnums=c.argnums, holomorphic=c.holomorphic)
        return outer(inner(f, **kw), **kw)
    return transform


def _hvp_by_jvp_of_grad(f, case):
    def run(*args):
        g, diff_args = case.on_diff_args(f, args)
        gradient = jax.grad(g, argnums=tuple(range(len(diff_args))), holomorphic=case.holomorphic)
        return jax.jvp(gradient, diff_args, tangents_like(diff_args))
    return run


SECOND_ORDER = {
    "hessian": lambda f, c: c.hessian(f),
    "fwd_over_rev": _nesting(jax.jacfwd, jax.jacrev),
    "rev_over_rev": _nesting(jax.jacrev, jax.jacrev),
    "fwd_over_fwd": _nesting(jax.jacfwd, jax.jacfwd),
    "rev_over_fwd": _nesting(jax.jacrev, jax.jacfwd),
    "hvp_by_jvp_of_grad": _hvp_by_jvp_of_grad,
}


def _third_order(f, case):
    kw = dict(argnums=case.argnums, holomorphic=case.holomorphic)
    return jax.jacfwd(jax.jacrev(jax.jacrev(f, **kw), **kw), **kw)


def _third_along_directions(f, case):
    # d/dt of the Hessian-vector product: the third derivative contracted with (u, v).
    def run(*args):
        g, diff_args = case.on_diff_args(f, args)
        hvp = lambda *d: _hvp_by_jvp_of_grad(g, _WholeArgs(case))(*d)[1]  # noqa: E731
        return jax.jvp(hvp, diff_args, tangents_like(tangents_like(diff_args)))
    return run


class _WholeArgs:
    """A stand-in case whose every argument is differentiated (for functions of diff args)."""

    def __init__(self, case):
        self.holomorphic = case.holomorphic

    def on_diff_args(self, f, args):
        return f, tuple(args)


@pytest.mark.parametrize("case,x64", x64_matrix(SCALAR_CASES), indirect=["x64"])
def test_second_order_family(case, x64):
    """hessian, the four nestings of jacfwd/jacrev, and HVP by jvp of grad, in one jax.jit."""
    if case.name == "mlp":
        # In the 27 pytree params the four nestings are large to compile; `mlp_x` covers them.
        check_against_jax(case, {k: SECOND_ORDER[k] for k in ("hessian", "hvp_by_jvp_of_grad")})
    else:
        check_against_jax(case, SECOND_ORDER)


# Rotated against the second-order table, so each case meets the other x64 setting here.
# (cond_true is the same function as cond on the other branch: third order only with -m slow.)
@pytest.mark.parametrize("case,x64", [
    p if p.values[0].name != "cond_true"
    else pytest.param(*p.values, id=p.id, marks=pytest.mark.slow)
    for p in x64_matrix(SCALAR_CASES[1:] + SCALAR_CASES[:1])], indirect=["x64"])
def test_third_order(case, x64):
    third = {"third_along_directions": _third_along_directions}
    if case.name != "mlp":  # the full tensor in the 27 pytree params is left to the directional one
        third["third_order_tensor"] = _third_order
    check_against_jax(case, third)


def test_hessian_of_vector_valued_function(x64):
    case = next(c for c in CASES if not c.scalar)
    check_against_jax(case, {"hessian": lambda f, c: jax.hessian(f)})


def test_hessian_eagerly():
    case = next(c for c in CASES if c.name == "custom_jvp")
    check_against_jax(case, {"hessian": SECOND_ORDER["hessian"],
                             "hvp": _hvp_by_jvp_of_grad}, jit=False)


def test_check_grads_order_3(enable_x64):
    # scan + cond + a custom_jvp helper in one wrapped function (check_grads to order 3 costs
    # about 10 s of CPU per function, even for plain JAX: the whole catalogue runs with -m slow).
    check_grads(jaxworld.wrap(composite_fn), (vector(3),), order=3, modes=("fwd", "rev"))


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in SCALAR_CASES if not c.holomorphic], ids=str)
def test_check_grads_order_3_catalogue(case, enable_x64):
    args = case.args()
    g, diff_args = case.on_diff_args(case.wrap(), args)
    check_grads(g, diff_args, order=3, modes=("fwd", "rev"))


@pytest.mark.slow
def test_check_grads_order_3_holomorphic(enable_x64):
    # check_grads perturbs complex inputs in complex directions: fine for a holomorphic function.
    case = next(c for c in SCALAR_CASES if c.holomorphic)
    check_grads(case.wrap(), case.args(), order=3, modes=("fwd", "rev"))


@pytest.mark.parametrize("mode,x64", x64_matrix(jaxworld.HESSIAN_MODES), indirect=["x64"])
def test_prepared_hessian_modes_and_hvp_match_jax(mode, x64):
    def f(x):
        return jnp.sum(jnp.sin(x) ** 2 * jnp.exp(0.2 * x))

    x = vector()
    assert_trees_close(jaxworld.hessian(f, mode=mode)(x), jax.hessian(f)(x))
    v = tangents_like(x)
    assert_trees_close(jaxworld.hvp(f)(x, v), jax.jvp(jax.grad(f), (x,), (v,))[1])
