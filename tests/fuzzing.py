"""Differential fuzzing of jaxworld against plain JAX traced fresh (issue #7, item 1).

A *case* is a generated program plus what is done to it:

- ``f(x)``: Python source built from a small grammar (``jnp`` elementwise ops, reductions, a matmul
  with a global NumPy matrix ``M``, ``jnp.where``, ``lax.scan``, ``lax.cond``) that reads a helper
  ``h`` and a global constant ``C``; ``h(v)`` is built from the same grammar (and may read ``C`` and
  ``M``). The helper is optionally itself ``@jaxworld.wrap``-ped (a nested wrapped helper).
- a stack of up to three JAX transformations (jit, vmap, grad, jvp, vjp, jacfwd, jacrev, hessian,
  checkpoint) applied to ``jaxworld.wrap(f)``;
- one prepared operator (``jaxworld.grad``, ``hessian(mode=...)``, ``hvp``, ``jvp``, ``vjp``, ...),
  optionally under an outer ``vmap`` / ``jit``;
- a world change: redefine the helper (exec a new ``def h``), rebind ``C``, mutate ``M`` in place,
  any combination, and then ``jaxworld.advance()`` or not;
- a *holder* (issue #13): a plain `jax.jit` that holds the wrapped function's trace through a
  nested `jax.jit`, a `jax.jit` embedding another's cached trace, a `scan` / `cond` / `fori_loop`
  body; and an unrelated `jax.jit` that must not re-trace when the change is scoped.

The oracle is plain JAX on a *freshly exec'd* copy of the same source (new function objects, so no
JAX cache can answer for it), in the world the result must come from: the new world after an
advance, the old world without one (code runs in the world it was traced in). jaxworld is checked
three ways: transformation stacks built *before* the change and called again after it, the same
stacks built afresh after it, and prepared operators built before it.

Run the bounded fuzz with the default tests (``tests/test_fuzz.py``); the long run is

    python -m tests.fuzzing --examples 10000 > /tmp/jaxworld-fuzz.log

(``--seed S`` picks the first chunk's seed, so several processes with distant seeds run different
cases side by side; ``--fast-compile`` turns XLA's optimizations off for both sides.)

which runs hypothesis in chunks with different seeds, logs every failure (after shrinking) and
goes on, and prints how many cases ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
import time
import traceback
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax import lax

import jaxworld
from jaxworld.testing import World

# -- the grammar ----------------------------------------------------------------------------------

_UNARY = (
    "jnp.sin({})", "jnp.cos({})", "jnp.tanh({})", "jax.nn.sigmoid({})", "jnp.log1p({0} * {0})",
    "jnp.sqrt(1.0 + {0} * {0})", "jnp.exp(-{0} * {0})", "(0.5 * {})", "(-{})",
)
_BINARY = ("({} + {})", "({} - {})", "({} * {})")
_REDUCE = ("jnp.sum", "jnp.mean", "jnp.max")
_LITERALS = ("0.5", "1.5", "2.0", "-0.75")


@st.composite
def expressions(draw, var: str, depth: int, helper: bool, level: int = 0) -> str:
    """An expression shaped like `var`, built from `var`, ``C``, ``M`` and (if `helper`) ``h``."""
    if depth <= 0:
        # Every leaf has the variable's shape (scan carries and cond branches must keep it).
        return draw(st.sampled_from([var, var, f"({var} * C)", f"({var} + C)",
                                     f"({draw(st.sampled_from(_LITERALS))} * {var})"]))
    kinds = ["leaf", "unary", "unary", "binary", "binary", "reduce", "matmul", "where"]
    if helper:
        kinds += ["helper", "helper"]
    if depth >= 2:
        kinds += ["scan", "cond"]
    kind = draw(st.sampled_from(kinds))
    sub = lambda d=depth - 1: expressions(var, d, helper, level + 1)  # noqa: E731
    if kind == "leaf":
        return draw(sub(0))
    if kind == "unary":
        return draw(st.sampled_from(_UNARY)).format(draw(sub()))
    if kind == "binary":
        return draw(st.sampled_from(_BINARY)).format(draw(sub()), draw(sub()))
    if kind == "reduce":
        op = draw(st.sampled_from(("*", "+")))
        return f"({draw(sub())} {op} {draw(st.sampled_from(_REDUCE))}({draw(sub())}))"
    if kind == "matmul":
        return f"(M @ {draw(sub())})"
    if kind == "where":
        return f"jnp.where({draw(sub())} > 0, {draw(sub())}, {draw(sub())})"
    if kind == "helper":
        return f"h({draw(sub())})"
    inner = f"v{level}"
    body = draw(expressions(inner, depth - 1, helper, level + 1))
    if kind == "scan":
        length = draw(st.integers(1, 3))
        return (f"lax.scan(lambda {inner}, _: ({body}, None), {draw(sub())}, None, "
                f"length={length})[0]")
    other = draw(expressions(inner, depth - 1, helper, level + 1))
    return (f"lax.cond(jnp.sum({draw(sub())}) > 0, lambda {inner}: {body}, "
            f"lambda {inner}: {other}, {draw(sub())})")


_FINAL = ("jnp.sum({})", "jnp.sum({0} * {0})", "jnp.mean(jnp.sin({}))")

# -- transformations ------------------------------------------------------------------------------

TRANSFORMS = ("jit", "checkpoint", "vmap", "grad", "jvp", "vjp", "jacfwd", "jacrev", "hessian")
OPERATORS = ("grad", "value_and_grad", "jacfwd", "jacrev", "hessian", "hvp", "jvp", "vjp", "jit",
             "jit_raw")
HESSIAN_MODES = jaxworld.HESSIAN_MODES
CHANGES = ("helper", "const", "array")
HOLDERS = ("none", "nested_jit", "embedded_jit", "scan_body", "cond_branch", "fori_body")
BATCH = 2
_MAX_SIZE = 200  # elements of any intermediate output (keeps each case fast)


def _size(shape) -> int:
    return int(np.prod(shape, dtype=int))


def _shapes(stack: tuple[str, ...], n: int):
    """(in_shape, out_shape) after applying `stack` (outermost first) to f: (n,) -> (), or None."""
    in_shape, out_shape = (n,), ()
    for t in reversed(stack):
        if t == "grad":
            if out_shape != ():
                return None
            out_shape = in_shape
        elif t in ("jacfwd", "jacrev"):
            out_shape = out_shape + in_shape
        elif t == "hessian":
            out_shape = out_shape + in_shape + in_shape
        elif t == "jvp":
            out_shape = (2,) + out_shape
        elif t == "vjp":
            out_shape = in_shape
        elif t == "vmap":
            in_shape, out_shape = (BATCH,) + in_shape, (BATCH,) + out_shape
        if _size(out_shape) > _MAX_SIZE:
            return None
    return in_shape, out_shape


def _direction(shape, dtype, phase: float = 0.0):
    """A fixed, generic tangent / cotangent of `shape`."""
    # NumPy, not jnp: built once per case outside any trace, with no eager XLA compile.
    return (0.7 * np.cos(np.arange(_size(shape)) + phase) + 0.1).reshape(shape).astype(dtype)


def apply_stack(fun: Callable, stack: tuple[str, ...], n: int, dtype) -> Callable:
    """`stack` (outermost first) applied to `fun`: (n,) -> (), as a function of one array."""
    in_shape, out_shape = (n,), ()
    g = fun
    for t in reversed(stack):
        g, in_shape, out_shape = _transform(t, g, in_shape, out_shape, dtype)
    return g


def _transform(t, g, in_shape, out_shape, dtype):
    if t == "jit":
        return jax.jit(g), in_shape, out_shape
    if t == "checkpoint":
        return jax.checkpoint(g), in_shape, out_shape
    if t == "vmap":
        return jax.vmap(g), (BATCH,) + in_shape, (BATCH,) + out_shape
    if t == "grad":
        return jax.grad(g), in_shape, in_shape
    if t in ("jacfwd", "jacrev"):
        return getattr(jax, t)(g), in_shape, out_shape + in_shape
    if t == "hessian":
        return jax.hessian(g), in_shape, out_shape + in_shape + in_shape
    if t == "jvp":
        v = _direction(in_shape, dtype)

        def jvp_fn(x, g=g, v=v):
            p, tan = jax.jvp(g, (x,), (v,))
            return jnp.stack([p, tan])

        return jvp_fn, in_shape, (2,) + out_shape
    if t == "vjp":
        u = _direction(out_shape, dtype, phase=1.0)

        def vjp_fn(x, g=g, u=u):
            _, pullback = jax.vjp(g, x)
            return pullback(u)[0]

        return vjp_fn, in_shape, in_shape
    raise ValueError(t)


def _hessian_plain(f, mode):
    outer, inner = {"fwd_over_rev": (jax.jacfwd, jax.jacrev),
                    "rev_over_rev": (jax.jacrev, jax.jacrev),
                    "fwd_over_fwd": (jax.jacfwd, jax.jacfwd),
                    "rev_over_fwd": (jax.jacrev, jax.jacfwd)}[mode]
    return outer(inner(f))


def build_operator(kind: str, mode: str, wf, raw_f, dtype, n: int):
    """The prepared jaxworld operator `kind` of the wrapped `wf`, as a function of x."""
    v = _direction((n,), dtype)
    if kind == "hessian":
        return jaxworld.hessian(wf, mode=mode)
    if kind == "hvp":
        op = jaxworld.hvp(wf)
        return lambda x: op(x, v)
    if kind == "jvp":
        return lambda x: jaxworld.jvp(wf, (x,), (v,))
    if kind == "vjp":
        raise AssertionError("vjp is built per point (its pullback is the prepared object)")
    if kind == "jit_raw":
        return jaxworld.jit(raw_f)
    return getattr(jaxworld, kind)(wf)


def plain_operator(kind: str, mode: str, f, dtype, n: int):
    """The plain-JAX oracle of `build_operator`."""
    v = _direction((n,), dtype)
    if kind == "hessian":
        return _hessian_plain(f, mode)
    if kind == "hvp":
        return lambda x: jax.jvp(jax.grad(f), (x,), (v,))[1]
    if kind == "jvp":
        return lambda x: jax.jvp(f, (x,), (v,))
    if kind == "vjp":
        return lambda x: jax.vjp(f, x)[1](jnp.ones((), dtype))
    if kind in ("jit", "jit_raw"):
        return jax.jit(f)
    return getattr(jax, kind)(f)


def _outer(outer: str, g: Callable) -> Callable:
    if outer == "vmap":
        return jax.vmap(g)
    if outer == "jit":
        return jax.jit(g)
    return g


def build_holder(kind: str, g: Callable) -> Callable:
    """A plain `jax.jit` that holds `g`'s trace in one of the ways JAX caches traces."""
    if kind == "nested_jit":
        inner = jax.jit(g)
        return jax.jit(lambda x: inner(x) * 2.0)
    if kind == "embedded_jit":  # `inner` is called alone first: `outer` embeds its cached trace
        inner = jax.jit(g)
        outer = jax.jit(lambda x: inner(x) + 1.0)

        def embedded(x):
            inner(x)
            return outer(x)
        return embedded
    if kind == "scan_body":
        body = lambda c, xi: (c + g(xi), None)  # noqa: E731 - one object, cached by JAX
        return jax.jit(lambda x: lax.scan(body, jnp.zeros((), x.dtype), jnp.stack([x, 0.5 * x]))[0])
    if kind == "cond_branch":
        negated = lambda y: -g(y)  # noqa: E731
        return jax.jit(lambda x: lax.cond(jnp.sum(x) > 0, g, negated, x))
    if kind == "fori_body":
        return jax.jit(lambda x: lax.fori_loop(0, 2, lambda i, c: c + g(x), jnp.zeros((), x.dtype)))
    return g


# -- a case ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    """One generated program, transformation stack, operator and world change (reproducible)."""

    f_body: str
    h_old: str
    h_new: str
    wrap_helper: bool
    c_old: float
    c_new: float
    n: int
    x64: bool
    stack: tuple[str, ...]
    operator: str
    mode: str = "fwd_over_rev"
    outer: str = "none"
    changes: tuple[str, ...] = ("helper",)
    advance: bool = True
    seed: int = 0
    holder: str = "none"

    def source(self, world: str) -> str:
        """The notebook source of `world` ("old" or "new")."""
        h_expr = self.h_new if world == "new" and "helper" in self.changes else self.h_old
        deco = "@jaxworld.wrap\n" if self.wrap_helper else ""
        return f"{deco}def h(v):\n    return {h_expr}\n\ndef f(x):\n    return {self.f_body}\n"

    def constant(self, world: str) -> float:
        return self.c_new if world == "new" and "const" in self.changes else self.c_old

    def matrix(self, world: str) -> np.ndarray:
        dtype = np.float64 if self.x64 else np.float32
        changed = world == "new" and "array" in self.changes
        rng = np.random.default_rng(self.seed + (1 if changed else 0))
        return (rng.standard_normal((self.n, self.n)) / np.sqrt(self.n)).astype(dtype)


@st.composite
def cases(draw) -> Case:
    n = draw(st.sampled_from((2, 3)))
    depth = draw(st.integers(1, 3))
    f_expr = draw(expressions("x", depth, helper=True))
    if "h(" not in f_expr:  # make the helper matter in most cases
        f_expr = f"(h({f_expr}) + {f_expr})" if draw(st.booleans()) else f_expr
    f_body = draw(st.sampled_from(_FINAL)).format(f_expr)
    h_old = draw(expressions("v", draw(st.integers(1, 2)), helper=False))
    h_new = draw(expressions("v", draw(st.integers(1, 2)), helper=False))
    stack_len = draw(st.integers(0, 3))
    stack: tuple[str, ...] = ()
    for _ in range(stack_len):
        candidate = (draw(st.sampled_from(TRANSFORMS)),) + stack
        if _shapes(candidate, n) is not None:
            stack = candidate
    operator = draw(st.sampled_from(OPERATORS))
    outer = "none"
    if operator not in ("jvp", "vjp"):
        outer = draw(st.sampled_from(("none", "vmap", "jit")))
    changes = tuple(sorted(draw(st.sets(st.sampled_from(CHANGES), min_size=0, max_size=3))))
    return Case(
        f_body=f_body, h_old=h_old, h_new=h_new, wrap_helper=draw(st.booleans()),
        c_old=draw(st.sampled_from((0.5, 1.25, -0.8))),
        c_new=draw(st.sampled_from((1.5, -0.3, 0.9))),
        n=n, x64=draw(st.booleans()), stack=stack, operator=operator,
        mode=draw(st.sampled_from(HESSIAN_MODES)), outer=outer, changes=changes,
        advance=draw(st.booleans()), seed=draw(st.integers(0, 2**16)),
        holder=draw(st.sampled_from(HOLDERS)))


# -- running a case -------------------------------------------------------------------------------

_PRELUDE = {"jax": jax, "jnp": jnp, "lax": lax, "np": np, "jaxworld": jaxworld}


def namespace(case: Case, world: str, *, plain: bool) -> dict:
    """A fresh notebook namespace holding `world`'s h, f, C and M (plain: no jaxworld.wrap)."""
    ns = dict(_PRELUDE)
    ns["C"] = case.constant(world)
    ns["M"] = case.matrix(world)
    source = case.source(world)
    if plain:
        source = source.replace("@jaxworld.wrap\n", "")
    World("fuzz", namespace=ns).define(source, filename=f"<fuzz-{world}>")
    return ns


def apply_change(case: Case, ns: dict) -> None:
    """Make `case`'s world change in the live namespace `ns`, like a notebook cell would."""
    if "helper" in case.changes:
        deco = "@jaxworld.wrap\n" if case.wrap_helper else ""
        World("fuzz", namespace=ns).define(f"{deco}def h(v):\n    return {case.h_new}\n",
                                           filename="<fuzz-cell>")
    if "const" in case.changes:
        ns["C"] = case.c_new
    if "array" in case.changes:
        ns["M"][...] = case.matrix("new")  # in place: the same array object, new contents


def inputs(case: Case):
    dtype = jnp.float64 if case.x64 else jnp.float32
    rng = np.random.default_rng(case.seed)
    x = jnp.asarray(rng.uniform(-1.0, 1.0, (case.n,)).astype(dtype))
    xs = jnp.asarray(rng.uniform(-1.0, 1.0, (BATCH, case.n)).astype(dtype))
    return dtype, x, xs


def tolerance(case: Case) -> dict:
    # Generated programs compose up to ~10 transcendental ops and three derivative orders, so
    # reassociation inside XLA moves results by more ulps than the hand-written tests see.
    return {"rtol": 1e-9, "atol": 1e-9} if case.x64 else {"rtol": 2e-4, "atol": 2e-4}


def compare(actual, expected, case: Case, what: str) -> None:
    a_leaves, a_tree = jax.tree_util.tree_flatten(actual)
    e_leaves, e_tree = jax.tree_util.tree_flatten(expected)
    assert a_tree == e_tree, f"{what}: tree {a_tree} vs {e_tree}\n{case}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape and a.dtype == e.dtype, \
            f"{what}: {a.shape}/{a.dtype} vs {e.shape}/{e.dtype}\n{case}"
        np.testing.assert_allclose(a, e, **tolerance(case), err_msg=f"{what}\n{case}")


def _stack_input(case: Case, x, xs):
    """The input of the stack: batched once per vmap in it."""
    k = case.stack.count("vmap")
    if k == 0:
        return x
    out = np.asarray(xs)
    for _ in range(k - 1):
        out = np.stack([out, 0.5 * out])
    return jnp.asarray(out)


def run_case(case: Case) -> None:
    """Run one case; raise AssertionError naming what differed from plain JAX."""
    with jax.enable_x64(case.x64):
        dtype, x, xs = inputs(case)
        sx = _stack_input(case, x, xs)
        op_in = xs if case.outer == "vmap" else x

        def oracle(world, eager=False):
            # One jit around the whole oracle: a fresh trace of freshly exec'd functions (no cache
            # can answer for it), compiled once instead of op by op (compiles dominate a case).
            ns = namespace(case, world, plain=True)

            def reference(sx, op_in, x):
                stack = apply_stack(ns["f"], case.stack, case.n, dtype)(sx)
                op = _outer(case.outer, plain_operator(case.operator, case.mode, ns["f"], dtype,
                                                       case.n))(op_in)
                return stack, op, ns["f"](x), build_holder(case.holder, ns["f"])(x)

            return reference(sx, op_in, x) if eager else jax.jit(reference)(sx, op_in, x)

        eager_oracles: dict = {}

        def judge(actual, expected, world: str, index: int, what: str) -> None:
            """jaxworld must give plain JAX's answer: compiled as one jit, or else run eagerly.

            Plain JAX under one `jax.jit` is not always plain JAX's answer: XLA can fuse the
            recomputation of `jnp.max`'s operand differently from its forward pass, so the
            gradient rule's exact-equality test finds no maximum and returns inf, or drops the
            max's term (`jax.jit(jax.grad(f))` vs `jax.grad(f)`, RELIABILITY.md). A case fails
            only when jaxworld differs from both.
            """
            try:
                compare(actual, expected, case, what)
            except AssertionError as against_jit:
                if world not in eager_oracles:
                    eager_oracles[world] = oracle(world, eager=True)
                try:
                    compare(actual, eager_oracles[world][index], case, what)
                except AssertionError as against_eager:
                    raise AssertionError(f"{against_jit}\n--- and against plain JAX run without "
                                         f"the outer jit ---\n{against_eager}") from None
                _counter["eager_judged"] += 1

        old_stack, old_op, old_value, old_held = oracle("old")

        # The live "notebook": f and h as a user would have them, wrapped.
        ns = namespace(case, "old", plain=False)
        wf = jaxworld.wrap(ns["f"])
        before_stack = apply_stack(wf, case.stack, case.n, dtype)
        if case.operator == "vjp":
            out, pullback = jaxworld.vjp(wf, x)
            prepared = lambda _x: pullback(np.ones((), dtype))  # noqa: E731 (at the stored x)
            judge(out, old_value, "old", 2, "vjp primal output (old world)")
        else:
            prepared = _outer(case.outer, build_operator(case.operator, case.mode, wf, ns["f"],
                                                         dtype, case.n))
        judge(before_stack(sx), old_stack, "old", 0, "transformation stack before the change")
        judge(prepared(op_in), old_op, "old", 1, f"operator {case.operator} before the change")
        holder = build_holder(case.holder, wf)
        judge(holder(x), old_held, "old", 3, f"holder {case.holder} before the change")
        unrelated_traces = [0]

        def unrelated(y):
            unrelated_traces[0] += 1  # runs once per trace
            return jnp.sum(jnp.cos(y) * 3.0)

        unrelated_jit = jax.jit(unrelated)
        unrelated_jit(x)
        global_before = jaxworld.stats()["global_invalidations"]

        apply_change(case, ns)
        if case.advance:
            jaxworld.advance()
        world = "new" if case.advance else "old"
        new_stack, new_op, new_value, new_held = (oracle(world) if case.advance
                                                  else (old_stack, old_op, old_value, old_held))
        judge(holder(x), new_held, world, 3,
              f"holder {case.holder} built before the change ({world} world)")
        unrelated_jit(x)
        if jaxworld.stats()["global_invalidations"] == global_before:
            assert unrelated_traces[0] == 1, f"an unrelated jax.jit re-traced\n{case}"
        else:
            _counter["global_fallbacks"] += 1

        judge(before_stack(sx), new_stack, world, 0,
              f"stack built before the change, called after it ({world} world)")
        after_stack = apply_stack(wf, case.stack, case.n, dtype)
        judge(after_stack(sx), new_stack, world, 0, f"stack built after the change ({world} world)")
        judge(prepared(op_in), new_op, world, 1,
              f"operator {case.operator} built before the change ({world} world)")
        judge(wf(x), new_value, world, 2, f"wrapped function called eagerly ({world} world)")


# -- the long run ---------------------------------------------------------------------------------

_counter = {"cases": 0, "rejudged": 0, "eager_judged": 0, "global_fallbacks": 0}
_fast_compile = {"on": False}  # set by `--fast-compile`


def _fuzz_settings(examples: int, seed: int | None = None):
    kwargs = dict(max_examples=examples, deadline=None, database=None, derandomize=False,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much])
    return settings(**kwargs)


def fuzz(examples: int, seed: int | None = None) -> None:
    """Run `examples` generated cases through hypothesis (raises on the first, shrunk failure)."""

    @_fuzz_settings(examples)
    @given(cases())
    def check(case):
        _counter["cases"] += 1
        try:
            run_case(case)
        except AssertionError:
            if not _fast_compile["on"]:
                raise
            # With XLA's optimizations off, plain JAX's own compiled gradients can be wrong:
            # `jax.jit(jax.grad(f))` gave [nan, inf] where the gradient is finite (`jnp.max`'s
            # rule finds the maximum by exact equality; RELIABILITY.md). Judge again with
            # XLA's default optimizations: a real difference from plain JAX fails there too.
            jax.config.update("jax_disable_most_optimizations", False)
            try:
                run_case(case)
            finally:
                jax.config.update("jax_disable_most_optimizations", True)
            _counter["rejudged"] += 1
            print(f"fast-compile artefact, passes with XLA's default optimizations: {case}",
                  flush=True)

    if seed is not None:
        from hypothesis import seed as hypothesis_seed
        check = hypothesis_seed(seed)(check)
    check()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=250,
                        help="cases per hypothesis run (a failure stops only its chunk)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast-compile", action="store_true",
                        help="compile with XLA's optimizations off (jax_disable_most_optimizations)"
                             ": ~20%% more cases per hour; the oracle is compiled the same way. "
                             "Unoptimized XLA can compute wrong gradients for plain JAX too, so "
                             "a failing case is judged again with the default optimizations")
    args = parser.parse_args(argv)
    jax.config.update("jax_numpy_rank_promotion", "raise")  # as in tests/conftest.py
    jaxworld._deps.settings.verify_guards = True  # as in tests/conftest.py: walk to check guards
    if args.fast_compile:
        jax.config.update("jax_disable_most_optimizations", True)
        _fast_compile["on"] = True
    start = time.time()
    failures = 0
    chunk_seed = args.seed
    while _counter["cases"] < args.examples:
        todo = min(args.chunk, args.examples - _counter["cases"])
        try:
            fuzz(todo, seed=chunk_seed)
        except BaseException as err:  # noqa: BLE001 - log and go on with the next chunk
            if isinstance(err, KeyboardInterrupt):
                raise
            failures += 1
            print(f"FAILURE #{failures} (chunk seed {chunk_seed}):", flush=True)
            print(textwrap.indent("".join(traceback.format_exception(err))[-6000:], "  "),
                  flush=True)
        chunk_seed += 1
        print(f"[{time.time() - start:8.0f}s] cases run: {_counter['cases']}, failing chunks: "
              f"{failures}", flush=True)
    print(f"DONE: {_counter['cases']} cases, {failures} failing chunk(s), "
          f"{_counter['rejudged']} fast-compile artefact(s) judged again and passed, "
          f"{_counter['eager_judged']} comparison(s) settled by the eager oracle, "
          f"{time.time() - start:.0f}s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
