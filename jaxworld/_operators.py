"""Prepared, epoch-aware differentiation operators: `jaxworld.grad`, `hessian`, `hvp`, ...

Each operator is `jax.jit` of JAX's own transformation applied to the wrapped function. That gives
the properties the world-tracking issue asks for with no extra machinery:

- compiled once per input signature: `jax.jit`'s cache;
- inner derivation happens once: the derived closures are cached on the wrapped function's root
  closure, so an outer re-trace (a new input shape, a changed world) re-uses them when valid;
- epoch-aware: `advance()` bumps the JAX user context that is part of `jax.jit`'s cache key when,
  and only when, a dependency record changed; then the operator re-traces once, which reaches the
  wrapped function's cache entry, which re-traces from the origin;
- steady state: a call is `jax.jit`'s C++ dispatch plus one Python call frame.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import jax
from jax import tree_util

from . import _closure
from ._closure import OpaqueClosure
from ._compat import ValAccum, typeof
from ._primitive import bind
from ._wrap import Wrapped, wrap

HESSIAN_MODES = ("fwd_over_rev", "rev_over_rev", "fwd_over_fwd", "rev_over_fwd")


def _as_wrapped(fun: Any, api: str) -> Wrapped:
    if isinstance(fun, Wrapped):
        return fun
    if not callable(fun):
        raise TypeError(
            f"{api}: expected a callable to differentiate, got {type(fun).__name__} {fun!r:.60}. "
            f"Usage: `{api}(f)(x)`.")
    return wrap(fun)


class Operator:
    """A prepared derivative of a wrapped function: call it like the JAX function it mirrors."""

    def __init__(self, api: str, wrapped: Wrapped, build: Callable[[Wrapped], Callable],
                 check: Callable[..., None] | None = None, **jit_kwargs):
        self._api = api
        self._check = check
        self.__wrapped__ = wrapped
        self._stats_owner = wrapped
        self._function = build(wrapped)
        self._jitted = jax.jit(self._function, **jit_kwargs)
        self.__name__ = f"{api.split('.')[-1]}({wrapped.__name__})"
        self.__qualname__ = self.__name__
        self.__doc__ = f"`{api}` of {wrapped.__name__}, prepared and epoch-aware."
        self._call = self._jitted if check is None else self._checked_call

    # `op(x)` looks `__call__` up on the type; a property whose getter is C code (`attrgetter`)
    # hands back `jax.jit`'s C++ function itself, so a steady-state call adds no Python frame to
    # jit's dispatch (issue #6: a frame with *args/**kwargs cost ~10% of a 10 us Hessian call).
    __call__ = property(attrgetter("_call"))

    def _checked_call(self, *args, **kwargs):
        try:
            return self._jitted(*args, **kwargs)
        except (TypeError, ValueError):
            # Explain bad input in jaxworld's terms; checked only on failure, so the steady-state
            # call pays nothing for it.
            self._check(*args, **kwargs)
            raise

    def lower(self, *args, **kwargs):
        """`jax.jit(...).lower` of this operator (e.g. for `cost_analysis()`)."""
        return self._jitted.lower(*args, **kwargs)

    def trace(self, *args, **kwargs):
        return self._jitted.trace(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<jaxworld operator {self.__name__}>"


def jit(fun: Callable, **jit_kwargs) -> Operator:
    """A drop-in for `jax.jit` that also notices changes to `fun`'s own dependencies.

    `jax.jit` keys its cache on the identity of `fun`: redefine a helper `fun` calls, or rebind a
    global float it reads, and it keeps returning the old answer. `jaxworld.jit` records what
    `fun` depends on; after `jaxworld.advance()` (or a notebook cell) it re-traces when that
    changed, and only then.

    Args:
      fun: the function to compile.
      **jit_kwargs: passed to `jax.jit` (``static_argnums``, ``static_argnames``,
        ``donate_argnums``, shardings, ...).

    Raises:
      TypeError: `fun` is not callable.
      ValueError: `static_argnums` names a position `fun` does not have.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> f = jaxworld.jit(lambda x: jnp.sin(x) + 1.0)
      >>> float(f(0.0))
      1.0
    """
    static_argnums = jit_kwargs.get("static_argnums", ())
    static_argnames = jit_kwargs.get("static_argnames", ())
    wrapped = fun if isinstance(fun, Wrapped) else _as_wrapped_static(
        fun, "jaxworld.jit", static_argnums, static_argnames)
    return Operator("jaxworld.jit", wrapped, lambda w: w, **jit_kwargs)


def _as_wrapped_static(fun, api, static_argnums, static_argnames):
    if not callable(fun):
        raise TypeError(
            f"{api}: expected a callable, got {type(fun).__name__} {fun!r:.60}. "
            f"Usage: `{api}(f)`.")
    return wrap(fun, static_argnums=static_argnums, static_argnames=static_argnames)


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         holomorphic: bool = False, allow_int: bool = False) -> Operator:
    """Prepared, epoch-aware `jax.grad` (same arguments).

    Raises:
      TypeError: `fun` is not callable.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> g = jaxworld.grad(lambda x: jnp.sum(x ** 2))
      >>> g(jnp.ones(2)).tolist()
      [2.0, 2.0]
    """
    w = _as_wrapped(fun, "jaxworld.grad")
    return Operator("jaxworld.grad", w, lambda f: jax.grad(
        f, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic, allow_int=allow_int))


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   holomorphic: bool = False, allow_int: bool = False) -> Operator:
    """Prepared, epoch-aware `jax.value_and_grad` (same arguments).

    Raises:
      TypeError: `fun` is not callable.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).
    """
    w = _as_wrapped(fun, "jaxworld.value_and_grad")
    return Operator("jaxworld.value_and_grad", w, lambda f: jax.value_and_grad(
        f, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic, allow_int=allow_int))


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False) -> Operator:
    """Prepared, epoch-aware `jax.jacfwd` (same arguments).

    Raises:
      TypeError: `fun` is not callable.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).
    """
    w = _as_wrapped(fun, "jaxworld.jacfwd")
    return Operator("jaxworld.jacfwd", w, lambda f: jax.jacfwd(
        f, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic))


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False, allow_int: bool = False) -> Operator:
    """Prepared, epoch-aware `jax.jacrev` (same arguments).

    Raises:
      TypeError: `fun` is not callable.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).
    """
    w = _as_wrapped(fun, "jaxworld.jacrev")
    return Operator("jaxworld.jacrev", w, lambda f: jax.jacrev(
        f, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic, allow_int=allow_int))


def _check_mode(mode: object) -> str:
    if mode not in HESSIAN_MODES:
        raise ValueError(
            f"jaxworld.hessian: unknown mode {mode!r}. Expected one of "
            f"{', '.join(map(repr, HESSIAN_MODES))} (outer-over-inner: 'fwd_over_rev' is "
            "jax.hessian's jacfwd(jacrev(f)) and the usual best choice).")
    return mode  # type: ignore[return-value]


def hessian(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
            holomorphic: bool = False, *, mode: str = "fwd_over_rev") -> Operator:
    """Prepared, epoch-aware `jax.hessian`, with a choice of nesting.

    Args:
      fun, argnums, has_aux, holomorphic: as for `jax.hessian`.
      mode: ``"fwd_over_rev"`` (default, ``jacfwd(jacrev(f))`` like `jax.hessian`),
        ``"rev_over_rev"``, ``"fwd_over_fwd"`` or ``"rev_over_fwd"``.

    Raises:
      TypeError: `fun` is not callable.
      ValueError: `mode` is not one of `jaxworld.HESSIAN_MODES`.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> H = jaxworld.hessian(lambda x: jnp.sum(x ** 3), mode="rev_over_rev")
      >>> H(jnp.ones(2)).tolist()
      [[6.0, 0.0], [0.0, 6.0]]
    """
    mode = _check_mode(mode)
    outer, inner = {"fwd_over_rev": (jax.jacfwd, jax.jacrev),
                    "rev_over_rev": (jax.jacrev, jax.jacrev),
                    "fwd_over_fwd": (jax.jacfwd, jax.jacfwd),
                    "rev_over_fwd": (jax.jacrev, jax.jacfwd)}[mode]
    w = _as_wrapped(fun, "jaxworld.hessian")

    def build(f):
        return outer(inner(f, argnums, has_aux=has_aux, holomorphic=holomorphic), argnums,
                     has_aux=has_aux, holomorphic=holomorphic)

    return Operator("jaxworld.hessian", w, build)


def hvp(fun: Callable) -> Operator:
    """Prepared Hessian-vector product by forward-over-reverse: ``hvp(f)(x, v) = H(x) @ v``.

    `x` and `v` are pytrees of the same structure, shapes and dtypes; `f` returns a scalar.

    Raises:
      TypeError: `fun` is not callable.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> hv = jaxworld.hvp(lambda x: jnp.sum(x ** 3))
      >>> hv(jnp.ones(2), jnp.array([1.0, 0.0])).tolist()
      [6.0, 0.0]
    """
    w = _as_wrapped(fun, "jaxworld.hvp")

    def build(f):
        gradient = jax.grad(f)

        def hvp_fn(x, v):
            return jax.jvp(gradient, (x,), (v,))[1]

        return hvp_fn

    def check(x, v):
        x_tree, v_tree = tree_util.tree_structure(x), tree_util.tree_structure(v)
        if x_tree != v_tree:
            raise TypeError(
                "jaxworld.hvp: the vector v must have the same pytree structure as x.\n"
                f"  x: {x_tree}\n  v: {v_tree}\n"
                "Pass v shaped like x (e.g. jax.tree.map(jnp.ones_like, x)).")
        for a, b in zip(tree_util.tree_leaves(x), tree_util.tree_leaves(v), strict=True):
            if jax.numpy.shape(a) != jax.numpy.shape(b):
                raise TypeError(
                    f"jaxworld.hvp: v's leaves must have x's shapes; got an x leaf of shape "
                    f"{jax.numpy.shape(a)} and a v leaf of shape {jax.numpy.shape(b)}.")

    return Operator("jaxworld.hvp", w, build, check=check)


_jvp_cache: weakref.WeakKeyDictionary[Wrapped, dict[bool, Callable]] = weakref.WeakKeyDictionary()


def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False):
    """Prepared, epoch-aware `jax.jvp` (same arguments); compiled once per signature and world.

    Raises:
      TypeError: `fun` is not callable.
      TypeError: `primals` or `tangents` is not a tuple or list.
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> f = jaxworld.wrap(lambda x: x ** 2)
      >>> jaxworld.jvp(f, (3.0,), (1.0,))[1].item()
      6.0
    """
    w = _as_wrapped(fun, "jaxworld.jvp")
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(
            "jaxworld.jvp: primals and tangents must be tuples (or lists) of arguments, like "
            f"jax.jvp; got {type(primals).__name__} and {type(tangents).__name__}. "
            "Write jaxworld.jvp(f, (x,), (v,)).")
    per_function = _jvp_cache.setdefault(w, {})
    fn = per_function.get(has_aux)
    if fn is None:
        # `w` only weakly: a value of the WeakKeyDictionary that referenced its key would keep the
        # wrapped function, its origin and closures alive for ever (issue #7, memory). JAX's
        # trace cache still holds them until `jax.clear_caches()` (`_epoch.release_caches`).
        w_ref = weakref.ref(w)
        fn = per_function[has_aux] = jax.jit(
            lambda p, t: jax.jvp(w_ref(), p, t, has_aux=has_aux))
    return fn(tuple(primals), tuple(tangents))


class Pullback(OpaqueClosure):
    """The pullback of `jaxworld.vjp`: an `OpaqueClosure` (origin `f`) bound to its residuals.

    Calling it with an output cotangent returns the input cotangents (a tuple, like JAX). Made
    before a relevant change, called or differentiated after `advance()`, it re-derives from `f`
    at the stored primal point.

    Raises:
      TypeError: (when called) the cotangent is not structured or shaped like the primal output.
      StaleClosureError: under the 'error' stale-closure policy, when a call finds the trace's
        dependencies changed since (`jaxworld.policy`).
    """

    __slots__ = ("_residuals", "_primals", "_wrapped", "_primal_tree", "_out_ct_tree",
                 "_closure")

    def __call__(self, cotangent):
        target = self._closure
        residuals = self._residuals
        if not target.is_current:
            # A new world: derive the pullback again from the origin at the stored primal point.
            _, target, residuals, _, _ = _vjp_parts(self._wrapped, self._primals)
        leaves, tree = tree_util.tree_flatten(cotangent)
        if tree != self._out_ct_tree:
            raise TypeError(
                f"jaxworld.vjp: the pullback of {self._wrapped.__name__} expects a cotangent "
                f"structured like the primal output {self._out_ct_tree}, got {tree}.")
        ct_avals = target.in_avals[len(target.in_avals) - len(leaves):]
        for i, (leaf, aval) in enumerate(zip(leaves, ct_avals, strict=False)):
            if jax.numpy.shape(leaf) != aval.shape:
                raise TypeError(
                    f"jaxworld.vjp: the pullback of {self._wrapped.__name__} expects cotangent "
                    f"leaf {i} shaped like the primal output, {aval.shape}; got shape "
                    f"{jax.numpy.shape(leaf)}. Pass a cotangent with the output's shapes.")
        outs = bind(target, *residuals, *leaves)
        primal_leaves = tree_util.tree_leaves(self._primals)
        if len(outs) != len(primal_leaves):
            # The transposed closure returns cotangents of the inexact inputs only; like
            # jax.vjp, integer inputs get float0 zeros (found by jaxworld.testing's vjp cases).
            it = iter(outs)
            outs = [next(it) if jax.numpy.issubdtype(jax.numpy.result_type(x), jax.numpy.inexact)
                    else jax.numpy.zeros(jax.numpy.shape(x), jax.dtypes.float0)
                    for x in primal_leaves]
        return tree_util.tree_unflatten(self._primal_tree, outs)


def _vjp_parts(w: Wrapped, primals: tuple):
    """(outputs, pullback closure, residuals, primal tree, out tree) for `w` at `primals`."""
    entry, leaves = w._lookup(primals, {})
    root = entry.current()
    n_in = len(root.in_avals)
    derived = _closure.derive(root, "linearize", ((True,) * n_in, True))
    num_res, nonzeros_out, in_fwd_res = derived.meta
    outs = bind(derived.closures["primal"], *leaves)
    primal_outs, computed = outs[:len(outs) - num_res], outs[len(outs) - num_res:]
    forwardable = [*root.jaxpr.consts, *leaves]
    computed = iter(computed)
    residuals = [next(computed) if i is None else forwardable[i] for i in in_fwd_res]
    tangent = derived.closures["tangent"]
    # Transpose the tangent closure in its tangent inputs; residual inputs are not linear.
    res_avals = tuple(typeof(r) for r in residuals)
    ct_avals = tuple(a.to_tangent_aval()
                     for a, nz in zip(root.out_avals, nonzeros_out, strict=False) if nz)
    tan_in_avals = tuple(a.to_tangent_aval() for a in root.in_avals)
    specs = (tuple((None, a) for a in res_avals) + tuple((ValAccum, a) for a in tan_in_avals))
    in_tree = tree_util.tree_structure((list(res_avals), list(ct_avals)))
    transposed = _closure.derive(tangent, "transpose", (in_tree, res_avals + ct_avals, specs))
    pullback_closure = transposed.closures[None]
    return primal_outs, pullback_closure, residuals, nonzeros_out, root


def vjp(fun: Callable, *primals):
    """Epoch-aware `jax.vjp`: returns ``(out, pullback)`` where `pullback` is an `OpaqueClosure`.

    Forward-over-reverse through the pullback works (``jax.jvp`` of a function that calls it gives
    Hessian-vector products), and a pullback made before a relevant change re-derives from `fun`
    when called after `jaxworld.advance()`.

    Raises:
      TypeError: `fun` is not callable.
      TypeError: an output of `fun` is not differentiable (integer or constant).
      StaleClosureError: a call after a change, under the 'error' policy (see `jaxworld.wrap`).
      WorldChangeError: a re-trace would change what a live trace used (see `jaxworld.wrap`).

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> out, pullback = jaxworld.vjp(lambda x: jnp.sum(x ** 2), jnp.ones(2))
      >>> pullback(1.0)[0].tolist()
      [2.0, 2.0]
    """
    w = _as_wrapped(fun, "jaxworld.vjp")
    primal_outs, pb_closure, residuals, nonzeros_out, root = _vjp_parts(w, primals)
    if not all(nonzeros_out):
        raise TypeError(
            f"jaxworld.vjp: {w.__name__} has outputs that do not depend differentiably on its "
            "inputs (integer outputs or constants); jaxworld.vjp supports functions whose "
            "outputs are all differentiable. Use jax.vjp for this function.")
    out = tree_util.tree_unflatten(root._out_tree, primal_outs)
    pullback = Pullback.__new__(Pullback)
    for slot in OpaqueClosure.__slots__:
        if slot != "__weakref__":
            object.__setattr__(pullback, slot, getattr(pb_closure, slot))
    pullback._closure = pb_closure
    pullback._residuals = residuals
    pullback._primals = primals
    pullback._wrapped = w
    pullback._primal_tree = tree_util.tree_structure(tuple(primals))
    pullback._out_ct_tree = root._out_tree
    pullback._name = f"pullback({root.name})"
    return out, pullback
