"""Wrapped calls inside `lax.scan` / `cond` / `while_loop` / `fori_loop` bodies and under
`jax.checkpoint`, and wrapped functions that contain them, agree with plain JAX (issue #2).

Where plain JAX itself raises (reverse mode through a `while_loop` or a `fori_loop` with dynamic
bounds), jaxworld must raise the same error.
"""

import re

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxworld

from .helpers import assert_trees_close, tangents_like, vector, x64_matrix


def h(x):
    return jnp.sin(x) * jnp.cos(2.0 * x) + 0.1 * x ** 2


def in_scan_body(h):
    def f(x):
        def body(carry, xi):
            return carry + h(xi * carry), h(carry) * xi
        carry, ys = lax.scan(body, x[0], x)
        return carry + jnp.sum(ys)
    return f


def in_remat_scan_body(h):
    def f(x):
        @jax.checkpoint
        def body(carry, xi):
            return h(carry) * xi + xi, carry
        carry, ys = lax.scan(body, x[0], x)
        return carry + jnp.sum(ys ** 2)
    return f


def in_cond_branch(h):
    def f(x):
        return lax.cond(jnp.sum(x) > 3.0, lambda y: jnp.sum(h(y) * y), lambda y: jnp.sum(h(2 * y)),
                        x)
    return f


def in_static_fori_body(h):
    # Static bounds: a scan, so reverse mode works as in plain JAX.
    def f(x):
        return jnp.sum(lax.fori_loop(0, 3, lambda i, c: h(c) + 0.5 * x, x))
    return f


def in_while_body(h):
    def f(x):
        _, y = lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, h(s[1]) * x), (0, x))
        return jnp.sum(y)
    return f


def in_dynamic_fori_body(h):
    def f(x):
        n = jnp.sum(x > 0.0)  # a traced trip count: lowered to a while_loop
        return jnp.sum(lax.fori_loop(0, n, lambda i, c: h(c) * x, x))
    return f


def under_checkpoint(h):
    def f(x):
        return jnp.sum(jax.checkpoint(lambda y: h(h(y)) * y)(x))
    return f


def under_checkpoint_with_policy(h):
    def f(x):
        g = jax.checkpoint(lambda y: jnp.tanh(h(y) @ jnp.outer(y, y)),
                           policy=jax.checkpoint_policies.dots_saveable)
        return jnp.sum(g(x) ** 2)
    return f


REVERSIBLE = (in_scan_body, in_remat_scan_body, in_cond_branch, in_static_fori_body,
              under_checkpoint, under_checkpoint_with_policy)
FORWARD_ONLY = (in_while_body, in_dynamic_fori_body)

def _name(builder):
    return builder.__name__


FORWARD = {
    "value": lambda f: f,
    "jvp": lambda f: lambda x: jax.jvp(f, (x,), (tangents_like(x),)),
    "jacfwd": jax.jacfwd,
}
REVERSE = {
    "value": lambda f: f,
    "jvp": lambda f: lambda x: jax.jvp(f, (x,), (tangents_like(x),)),
    "grad": jax.grad,
    "hessian": jax.hessian,
}


def _inputs(builder):
    if builder is in_cond_branch:  # both branches: sum(x) is 2.6 for vector(), 6.6 for vector() + 1
        return vector(), vector() + 1.0
    return (vector(),)


def _check(builder, transforms, *, wrap_outer=False):
    """Each transform of builder(wrap(h)) (or of wrap(builder(h))) equals that of builder(h)."""
    plain = builder(h)
    wrapped = jaxworld.wrap(plain) if wrap_outer else builder(jaxworld.wrap(h))

    def run(f):
        return jax.jit(lambda xs: {name: [t(f)(x) for x in xs] for name, t in transforms.items()})

    expected, actual = run(plain)(_inputs(builder)), run(wrapped)(_inputs(builder))
    for name in transforms:
        try:
            assert_trees_close(actual[name], expected[name])
        except AssertionError as e:
            raise AssertionError(f"{_name(builder)}: {name} differs from plain JAX: {e}") from None


@pytest.mark.parametrize("builder,x64", x64_matrix(REVERSIBLE, _name), indirect=["x64"])
def test_wrapped_call_inside(builder, x64):
    _check(builder, REVERSE)


@pytest.mark.parametrize("builder,x64", x64_matrix(FORWARD_ONLY, _name), indirect=["x64"])
def test_wrapped_call_inside_while_forward_mode(builder, x64):
    _check(builder, FORWARD)


# Wrapped functions containing scan / cond / static fori_loop are in the shared catalogue
# (helpers.CASES) and tested in every transformation family; here the remaining ones.
@pytest.mark.parametrize(
    "builder,x64", x64_matrix((in_remat_scan_body, under_checkpoint) + FORWARD_ONLY, _name),
    indirect=["x64"])
def test_wrapped_function_containing(builder, x64):
    """The control flow (or checkpoint) is inside the wrapped function itself."""
    _check(builder, FORWARD if builder in FORWARD_ONLY else REVERSE, wrap_outer=True)


@pytest.mark.parametrize("wrap_outer", [False, True], ids=["call_inside", "function_containing"])
@pytest.mark.parametrize("builder", FORWARD_ONLY, ids=lambda b: b.__name__)
def test_reverse_mode_through_while_raises_like_jax(builder, wrap_outer):
    x = vector()
    with pytest.raises(Exception) as plain:
        jax.jit(jax.grad(builder(h)))(x)
    wrapped = jaxworld.wrap(builder(h)) if wrap_outer else builder(jaxworld.wrap(h))
    first_line = str(plain.value).splitlines()[0]
    with pytest.raises(type(plain.value), match=re.escape(first_line)):
        jax.jit(jax.grad(wrapped))(x)


def test_wrapped_call_under_checkpoint_eagerly():
    # No enclosing jit: the derived closures of the remat partial evaluation run their impl rule.
    plain = under_checkpoint(h)
    wrapped = under_checkpoint(jaxworld.wrap(h))
    x = vector()
    assert_trees_close(jax.grad(wrapped)(x), jax.grad(plain)(x))
    assert_trees_close(jax.value_and_grad(jax.checkpoint(jaxworld.wrap(h)), allow_int=True)(1.5),
                       jax.value_and_grad(jax.checkpoint(h))(1.5))


def test_checkpoint_of_wrapped_function_saves_nothing_under_nothing_saveable(x64):
    policy = jax.checkpoint_policies.nothing_saveable
    plain = lambda x: jnp.sum(jax.checkpoint(h, policy=policy)(x) ** 2)  # noqa: E731
    wh = jaxworld.wrap(h)
    wrapped = lambda x: jnp.sum(jax.checkpoint(wh, policy=policy)(x) ** 2)  # noqa: E731
    x = vector()
    assert_trees_close(jax.jit(jax.grad(wrapped))(x), jax.jit(jax.grad(plain))(x))
    assert_trees_close(jax.jit(jax.hessian(wrapped))(x), jax.jit(jax.hessian(plain))(x))
