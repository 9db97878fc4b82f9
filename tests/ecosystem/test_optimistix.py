"""optimistix and lineax: `optx.minimise`, `optx.root_find` and `lx.linear_solve` of wrapped
functions, before and after a helper changes (issue #14). The libraries compile with their own
`eqx.filter_jit`: a relevant `advance()` makes them re-trace. Oracle: the same solve of the plain
function, traced fresh.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx

import jaxworld

from ..helpers import assert_trees_close, notebook

Y0 = jnp.array([1.5, -0.5, 0.25])


def _namespace():
    return notebook("""
        def shift(args):
            return args["c"]
        def objective(y, args):
            return jnp.sum((y - shift(args)) ** 2) + 0.1 * jnp.sum(y ** 4)
        def residual(y, args):
            return y ** 3 + y - shift(args)
    """)


ARGS = {"c": jnp.array([0.3, -0.2, 1.0])}


def _minimise(fn):
    return optx.minimise(fn, optx.BFGS(rtol=1e-6, atol=1e-6), Y0, ARGS).value


def _root(fn):
    return optx.root_find(fn, optx.Newton(rtol=1e-6, atol=1e-6), Y0, ARGS).value


def test_minimise_and_root_find_follow_a_change():
    ns = _namespace()
    objective, residual = jaxworld.wrap(ns["objective"]), jaxworld.wrap(ns["residual"])
    assert_trees_close(_minimise(objective), _minimise(lambda y, a: ns["objective"](y, a)))
    assert_trees_close(_root(residual), _root(lambda y, a: ns["residual"](y, a)))
    notebook("def shift(args):\n    return 2.0 * args['c'] - 0.5\n", ns)
    jaxworld.advance()
    new_min = _minimise(objective)
    assert_trees_close(new_min, _minimise(lambda y, a: ns["objective"](y, a)))
    assert_trees_close(_root(residual), _root(lambda y, a: ns["residual"](y, a)))
    # The answer really moved: the old optimum is not the new one.
    old = _minimise(lambda y, a: jnp.sum((y - a["c"]) ** 2) + 0.1 * jnp.sum(y ** 4))
    assert float(jnp.max(jnp.abs(new_min - old))) > 0.1


def test_gradient_through_the_solution():
    # Implicit differentiation of the root with respect to its arguments goes through the
    # wrapped residual's derived closures.
    ns = _namespace()
    residual = jaxworld.wrap(ns["residual"])

    def root_sum(c, fn):
        return jnp.sum(optx.root_find(fn, optx.Newton(rtol=1e-8, atol=1e-8), Y0,
                                      {"c": c}).value)

    g = jax.grad(root_sum)(ARGS["c"], residual)
    g_plain = jax.grad(root_sum)(ARGS["c"], lambda y, a: ns["residual"](y, a))
    assert_trees_close(g, g_plain, rtol=1e-4, atol=1e-5)


def test_linear_solve_of_a_wrapped_operator():
    ns = notebook("""
        def diagonal():
            return jnp.array([2.0, 3.0, 4.0])
        def matvec(v):
            return diagonal() * v + 0.1 * jnp.roll(v, 1) + 0.1 * jnp.roll(v, -1)
    """)
    b = jnp.array([1.0, -1.0, 0.5])
    structure = jax.ShapeDtypeStruct((3,), jnp.float32)

    def solve(fn):
        operator = lx.FunctionLinearOperator(fn, structure)
        return lx.linear_solve(operator, b, lx.AutoLinearSolver(well_posed=True)).value

    matvec = jaxworld.wrap(ns["matvec"])
    assert_trees_close(solve(matvec), solve(lambda v: ns["matvec"](v)), rtol=1e-5, atol=1e-6)
    # explain reaches the wrapped function inside a lineax operator (an equinox Module).
    text = jaxworld.explain(lx.FunctionLinearOperator(matvec, structure))
    assert text.startswith("FunctionLinearOperator ") and "wrapped function: matvec" in text
    notebook("def diagonal():\n    return jnp.array([5.0, 1.0, 2.0])\n", ns)
    jaxworld.advance()
    assert_trees_close(solve(matvec), solve(lambda v: ns["matvec"](v)), rtol=1e-5, atol=1e-6)
