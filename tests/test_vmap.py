"""`jax.vmap` of wrapped functions, with `in_axes` that mix batched and unbatched (None)
arguments, and vmap of derivatives (issue #2)."""

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import (
    CASES,
    SCALAR_CASES,
    assert_trees_close,
    check_against_jax,
    mlp,
    mlp_params,
    stacked,
    vector,
    x64_matrix,
)


def _in_axes(case, args, batched):
    return tuple(None if i in case.static_argnums or i not in batched else 0
                 for i in range(len(args)))


def _vmap(batched_args, inner=lambda f, c: f):
    """vmap of `inner(f, case)` over the arguments in `batched_args` (the rest: in_axes=None)."""
    def transform(f, case):
        def run(*args):
            batched = range(len(args)) if batched_args == "all" else batched_args
            in_axes = _in_axes(case, args, batched)
            args = [a if ax is None else stacked(a) for a, ax in zip(args, in_axes, strict=True)]
            return jax.vmap(inner(f, case), in_axes=in_axes)(*args)
        return run
    return transform


VMAP = {
    "vmap_first_arg_others_none": _vmap((0,)),
    "vmap_all_args": _vmap("all"),
}
SCALAR_VMAP = {
    "vmap_of_grad": _vmap((0,), lambda f, c: c.grad(f)),
    "vmap_of_hessian": _vmap("all", lambda f, c: c.hessian(f)),
}


@pytest.mark.parametrize("case,x64", x64_matrix(CASES), indirect=["x64"])
def test_vmap_family(case, x64):
    # (The Hessian in the pytree params is left to test_hessian.py: it is large to compile.)
    check_against_jax(case, {**VMAP, **(SCALAR_VMAP if case.scalar and case.name != "mlp" else {})})


def test_vmap_eagerly():
    case = next(c for c in CASES if c.name == "cond")
    check_against_jax(case, VMAP, jit=False)


def test_vmap_in_axes_none_for_pytree_params_and_batched_params(x64):
    params, x = mlp_params(), vector(3)
    wf = jaxworld.wrap(mlp)
    xs, ps = stacked(x, 4), stacked(params, 2)
    cases = (((None, 0), (params, xs)), ((0, None), (ps, x)),
             (({"layers": None, "scale": 0}, 0), ({**params, "scale": xs[:, 0]}, xs)))

    def run(f):
        return jax.jit(lambda: [jax.vmap(f, in_axes=in_axes)(*args) for in_axes, args in cases])

    assert_trees_close(run(wf)(), run(mlp)())


def test_vmap_over_nonleading_axis_and_out_axes(x64):
    def f(x, y):
        return jnp.sin(x) * y, jnp.sum(x)

    wf = jaxworld.wrap(f)
    x, y = stacked(vector(), 3, axis=1), vector()
    kwargs = dict(in_axes=(1, None), out_axes=(1, 0))
    assert_trees_close(jax.vmap(wf, **kwargs)(x, y), jax.vmap(f, **kwargs)(x, y))


def test_nested_vmap_and_jit_of_vmap(x64):
    def f(x, y):
        return jnp.sum(jnp.tanh(x) * y)

    wf = jaxworld.wrap(f)
    x, y = stacked(stacked(vector(), 2), 3), stacked(vector(), 2)
    both = lambda g: jax.jit(jax.vmap(jax.vmap(g, in_axes=(0, 0)), in_axes=(0, None)))  # noqa: E731
    assert_trees_close(both(wf)(x, y), both(f)(x, y))


def test_vmap_reports_unbatched_outputs_exactly(x64):
    # An output that does not depend on the batched input stays unbatched (out_axes=None works),
    # as in plain JAX; jacfwd relies on this for the primal output.
    def f(x, c):
        return jnp.sin(x) * c, jnp.cos(c)

    wf = jaxworld.wrap(f)
    x, c = stacked(vector()), vector()
    kwargs = dict(in_axes=(0, None), out_axes=(0, None))
    assert_trees_close(jax.vmap(wf, **kwargs)(x, c), jax.vmap(f, **kwargs)(x, c))


@pytest.mark.parametrize("case", [c for c in SCALAR_CASES if c.name in ("reductions", "scan")],
                         ids=str)
def test_grad_of_vmap(case, x64):
    def transform(f, c):
        return jax.grad(lambda x: jnp.sum(jax.vmap(f)(stacked(x)) ** 2))
    check_against_jax(case, transform)
