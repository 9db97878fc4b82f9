"""Reverse mode does not recompute the primal: compiled FLOPs of grad, HVP and Hessian through
`jaxworld.wrap` equal plain JAX's on an MLP-like function (issue #2)."""

import jax
import pytest

import jaxworld

from .helpers import mlp, mlp_params, tangents_like, vector

SIZES = (8, 16, 16, 4)  # large enough that a recomputed forward pass shows in the count


def _flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older JAX: a list per device
    return cost["flops"]


def _grad_params(f):
    return jax.grad(f)


def _grad_x(f):
    return jax.grad(f, argnums=1)


def _hvp_x(f):
    def hvp(params, x):
        return jax.jvp(lambda x: jax.grad(f, argnums=1)(params, x), (x,), (tangents_like(x),))[1]
    return hvp


def _hvp_params(f):
    def hvp(params, x):
        g = lambda p: jax.grad(f)(p, x)  # noqa: E731
        return jax.jvp(g, (params,), (tangents_like(params),))[1]
    return hvp


def _hessian_x(f):
    return jax.hessian(f, argnums=1)


def _hessian_rev_over_rev_x(f):
    return jax.jacrev(jax.jacrev(f, argnums=1), argnums=1)


def _value_and_grad(f):
    return jax.value_and_grad(f)


@pytest.mark.parametrize("derivative", [_grad_params, _grad_x, _value_and_grad, _hvp_x,
                                        _hvp_params, _hessian_x, _hessian_rev_over_rev_x],
                         ids=lambda d: d.__name__.strip("_"))
def test_compiled_flops_equal_plain_jax(derivative):
    params, x = mlp_params(SIZES), vector(SIZES[0])
    plain = _flops(derivative(mlp), params, x)
    wrapped = _flops(derivative(jaxworld.wrap(mlp)), params, x)
    assert plain > 0
    assert wrapped == plain, f"wrapped {wrapped} vs plain {plain} FLOPs"


def test_a_recomputed_primal_would_show():
    # The equality above is sensitive: one extra forward pass is a sizeable part of the gradient's
    # FLOPs for this function, so recomputing the primal in reverse mode could not hide.
    params, x = mlp_params(SIZES), vector(SIZES[0])
    forward = _flops(mlp, params, x)
    gradient = _flops(jax.grad(mlp), params, x)
    assert forward > 0.2 * gradient, (forward, gradient)
