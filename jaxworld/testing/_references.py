"""The operator under test and the references it is compared with.

- `build_jaxworld(fun, spec, ...)`: the prepared jaxworld operator (or, ``via="wrap"``, jitted
  JAX transformations of ``jaxworld.wrap(fun)``), as a callable of the argument tuple.
- `plain_jax(fun, spec, ...)`: the same computation in plain JAX on a *fresh* copy of `fun`
  (no jaxworld anywhere; a new function object, so no JAX cache keyed on identity can answer).
- `finite_differences(fun, spec, ...)`: float64 central differences of function *values* for
  first- and second-order operators, computed under a scoped ``jax.enable_x64(True)`` that does
  not leak into the caller's configuration. They share no derivative rule with JAX, so they catch
  a wrong ``custom_jvp`` rule that plain JAX would agree with.
- `compare(actual, expected, ...)`: maximum absolute and relative errors and the verdict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import tree_util

import jaxworld

from .._wrap import Wrapped
from ._scenario import OperatorSpec
from ._world import fresh_function

# ------------------------------------------------------------------------------------------------
# Arguments: dynamic vs static, the prepare point, tangents.


def split_static(args: tuple, static_argnums: tuple[int, ...]):
    """(dynamic args, a function merging dynamic args back with the static ones)."""
    static = {i: args[i] for i in static_argnums}
    dyn = tuple(a for i, a in enumerate(args) if i not in static)
    n = len(args)

    def merge(dyn_args):
        it = iter(dyn_args)
        return tuple(static[i] if i in static else next(it) for i in range(n))

    return dyn, merge


def bind_static(fun: Callable, args: tuple, static_argnums: tuple[int, ...]) -> Callable:
    """`fun` as a function of the dynamic arguments alone (static ones bound)."""
    if not static_argnums:
        return fun
    _, merge = split_static(args, static_argnums)

    def bound(*dyn):
        return fun(*merge(dyn))

    return bound


def _is_inexact(x: Any) -> bool:
    return isinstance(x, (float, complex)) or (
        hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact))


def default_prepare_args(args: tuple, static_argnums: tuple[int, ...]) -> tuple:
    """A different point of the same shapes: every inexact dynamic leaf scaled by 1.1."""
    out = []
    for i, a in enumerate(args):
        if i in static_argnums:
            out.append(a)
        else:
            out.append(tree_util.tree_map(lambda x: x * 1.1 if _is_inexact(x) else x, a))
    return tuple(out)


def _random_like(tree: Any, seed: int) -> Any:
    rng = np.random.default_rng(seed)

    def leaf(x):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.complexfloating):
            v = rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape)
        elif np.issubdtype(x.dtype, np.floating):
            v = rng.standard_normal(x.shape)
        else:
            raise TypeError(
                f"jaxworld.testing: cannot make a tangent for a leaf of dtype {x.dtype}; the "
                "first argument of a differentiated scenario must be floating or complex.")
        return jnp.asarray(v, dtype=x.dtype)

    return tree_util.tree_map(leaf, tree)


def default_tangent(spec: OperatorSpec, fun: Callable, dyn: tuple) -> Any:
    """The fixed pseudo-random tangent (jvp, hvp) or output cotangent (vjp)."""
    if spec.family == "vjp":
        out = jax.eval_shape(fun, *dyn)
        return _random_like(tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), out), 1)
    return _random_like(dyn[0], 0)


def _zero_tangent(x: Any) -> Any:
    x = np.asarray(x) if not hasattr(x, "dtype") else x
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(np.shape(x), dtype=jax.dtypes.float0)


def _tangents(dyn: tuple, v: Any) -> tuple:
    return (v, *(tree_util.tree_map(_zero_tangent, a) for a in dyn[1:]))


# ------------------------------------------------------------------------------------------------
# The computation in JAX terms, shared by jaxworld and the plain reference.


def _hessian_of(f: Callable, mode: str, holomorphic: bool) -> Callable:
    outer, inner = {"fwd_over_rev": (jax.jacfwd, jax.jacrev),
                    "rev_over_rev": (jax.jacrev, jax.jacrev),
                    "fwd_over_fwd": (jax.jacfwd, jax.jacfwd),
                    "rev_over_fwd": (jax.jacrev, jax.jacfwd)}[mode]
    return outer(inner(f, holomorphic=holomorphic), holomorphic=holomorphic)


def _jax_computation(f: Callable, spec: OperatorSpec, holomorphic: bool, v: Any) -> Callable:
    """Plain JAX transformation of `f` (a function of the dynamic args) for `spec`."""
    fam = spec.family
    if fam == "value":
        return f
    if fam == "grad":
        return jax.grad(f, holomorphic=holomorphic)
    if fam == "jacfwd":
        return jax.jacfwd(f, holomorphic=holomorphic)
    if fam == "jacrev":
        return jax.jacrev(f, holomorphic=holomorphic)
    if fam == "hessian":
        return _hessian_of(f, spec.mode, holomorphic)
    if fam == "third_order":
        return jax.jacfwd(_hessian_of(f, "fwd_over_rev", holomorphic), holomorphic=holomorphic)
    if fam == "hvp":
        return lambda x: jax.jvp(jax.grad(f, holomorphic=holomorphic), (x,), (v,))[1]
    if fam == "jvp":
        return lambda *dyn: jax.jvp(f, dyn, _tangents(dyn, v))
    if fam == "vjp":
        def vjp(*dyn):
            out, pullback = jax.vjp(f, *dyn)
            return out, pullback(v)[0]
        return vjp
    raise AssertionError(fam)


def build_jaxworld(fun: Callable, spec: OperatorSpec, args: tuple, *, static_argnums=(),
                   holomorphic: bool = False, v: Any = None, via: str = "operator"):
    """The operator under test: ``(call(args) -> result, stats_owner)``.

    `args` only fixes the static arguments (they are the same at the prepare point).
    """
    fam = spec.family
    if fam == "value":
        op = (jaxworld.jit(fun, static_argnums=static_argnums) if via == "operator"
              else jax.jit(jaxworld.wrap(fun, static_argnums=static_argnums),
                           static_argnums=static_argnums))
        return (lambda a: op(*a)), op
    _, merge = split_static(args, static_argnums)
    if static_argnums:
        # Static arguments go to jaxworld.wrap (as static) inside a function of the dynamic ones.
        wrapped = jaxworld.wrap(fun, static_argnums=static_argnums)
        f = bind_static(wrapped, args, static_argnums)
        owner = wrapped
    else:
        f = wrapped = owner = fun

    def dyn_of(a):
        return tuple(x for i, x in enumerate(a) if i not in static_argnums)

    if via == "wrap" or fam == "third_order":
        w = f if isinstance(f, Wrapped) else jaxworld.wrap(f)
        owner = owner if static_argnums else w
        op = jax.jit(_jax_computation(w, spec, holomorphic, v))
        return (lambda a: op(*dyn_of(a))), owner
    if fam == "grad":
        op = jaxworld.grad(f, holomorphic=holomorphic)
    elif fam == "jacfwd":
        op = jaxworld.jacfwd(f, holomorphic=holomorphic)
    elif fam == "jacrev":
        op = jaxworld.jacrev(f, holomorphic=holomorphic)
    elif fam == "hessian":
        op = jaxworld.hessian(f, holomorphic=holomorphic, mode=spec.mode)
    elif fam == "hvp":
        hv = jaxworld.hvp(f)
        return (lambda a: hv(dyn_of(a)[0], v)), (owner if static_argnums else hv)
    elif fam == "jvp":
        w = f if isinstance(f, Wrapped) else jaxworld.wrap(f)
        # The tangents depend only on the signature: made once, not at every call (zeros_like
        # of each other argument is an eager JAX op, which would dominate a steady-state call).
        tangents = _tangents(dyn_of(args), v)

        def call(a):
            return jaxworld.jvp(w, dyn_of(a), tangents)

        return call, (owner if static_argnums else w)
    elif fam == "vjp":
        w = f if isinstance(f, Wrapped) else jaxworld.wrap(f)

        def call(a):
            out, pullback = jaxworld.vjp(w, *dyn_of(a))
            return out, pullback(v)[0]

        return call, (owner if static_argnums else w)
    else:
        raise AssertionError(fam)
    return (lambda a: op(*dyn_of(a))), (owner if static_argnums else op)


def plain_jax(fun: Callable, spec: OperatorSpec, args: tuple, *, static_argnums=(),
              holomorphic: bool = False, v: Any = None) -> Any:
    """The same computation in plain JAX, traced fresh (no jaxworld), jitted like the operator."""
    fresh = fresh_function(fun)
    dyn, _ = split_static(args, static_argnums)
    f = bind_static(fresh, args, static_argnums)
    return jax.jit(_jax_computation(f, spec, holomorphic, v))(*dyn)


# ------------------------------------------------------------------------------------------------
# Finite differences (float64, scoped x64).

_FD_FAMILIES = ("grad", "jvp", "vjp", "jacfwd", "jacrev", "hessian", "hvp")


def fd_applicable(spec: OperatorSpec, args: tuple, holomorphic: bool) -> str | None:
    """None when finite differences apply, else the reason they do not."""
    if spec.family not in _FD_FAMILIES:
        return ("finite differences cover first and second order only" if spec.order > 2
                else "no derivative to difference")
    leaves = tree_util.tree_leaves(args[0])
    if not leaves or not all(_is_inexact(x) for x in leaves):
        return "the first argument has non-floating leaves"
    complex_in = any(jnp.iscomplexobj(x) for x in leaves)
    if complex_in and not holomorphic:
        return "complex non-holomorphic function"
    if complex_in and spec.family == "vjp":
        return "complex vjp conventions (conjugation) are not differenced"
    return None


def _to64(tree: Any) -> Any:
    def leaf(x):
        if _is_inexact(x):
            x = np.asarray(x)
            return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)
        return x
    return tree_util.tree_map(leaf, tree)


def finite_differences(fun: Callable, spec: OperatorSpec, args: tuple, *, static_argnums=(),
                       holomorphic: bool = False, v: Any = None) -> Any:
    """Central differences of float64 function values, structured like JAX's result."""
    with jax.enable_x64(True):
        return _finite_differences(fun, spec, args, static_argnums, holomorphic, v)


def _finite_differences(fun, spec, args, static_argnums, holomorphic, v):
    fam = spec.family
    args64 = _to64(args)
    dyn, _ = split_static(args64, static_argnums)
    f = bind_static(fresh_function(fun), args64, static_argnums)
    x0 = dyn[0]
    in_leaves, in_tree = tree_util.tree_flatten(x0)
    shapes = [np.shape(x) for x in in_leaves]
    sizes = [int(np.prod(s)) for s in shapes]
    z0 = np.concatenate([np.ravel(np.asarray(x)) for x in in_leaves])
    n = z0.size
    rest = dyn[1:]

    def unravel(z):
        parts, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            parts.append(jnp.reshape(z[start:start + size], shape))
            start += size
        return tree_util.tree_unflatten(in_tree, parts)

    out_struct = jax.eval_shape(lambda z: f(unravel(z), *rest), z0)
    out_leaves_struct, out_tree = tree_util.tree_flatten(out_struct)

    def flat_out(z):
        return jnp.concatenate([jnp.ravel(o) for o in tree_util.tree_leaves(f(unravel(z), *rest))])

    F = jax.jit(flat_out)
    scale = max(1.0, float(np.max(np.abs(z0)))) if n else 1.0
    eye = np.eye(n, dtype=z0.dtype)

    def values(points):
        return np.stack([np.asarray(F(p)) for p in points])

    def out_unflatten(vec):
        parts, start = [], 0
        for s in out_leaves_struct:
            size = int(np.prod(s.shape))
            parts.append(np.reshape(vec[start:start + size], s.shape))
            start += size
        return tree_util.tree_unflatten(out_tree, parts)

    def in_unflatten(vec, lead_shape=()):
        """Split the last axis of `vec` (size n) into input leaves."""
        parts, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            parts.append(np.reshape(vec[..., start:start + size], lead_shape + shape))
            start += size
        return tree_util.tree_unflatten(in_tree, parts)

    if fam in ("grad", "jacfwd", "jacrev", "vjp", "jvp") and fam != "jvp":
        h = np.finfo(np.float64).eps ** (1 / 3) * scale
        plus = values(z0 + h * eye)
        minus = values(z0 - h * eye)
        cols = (plus - minus) / (2 * h)  # (n, m): column i is dF/dz_i
        jac = cols.T  # (m, n)
        if fam == "grad":
            return in_unflatten(jac[0])
        if fam == "vjp":
            ct = np.concatenate([np.ravel(np.asarray(c)) for c in tree_util.tree_leaves(v)])
            out = out_unflatten(np.asarray(F(z0)))
            return out, in_unflatten(ct @ jac)
        # jacobian: out tree whose leaves are input trees of shape out_shape + in_shape
        blocks, start = [], 0
        for s in out_leaves_struct:
            size = int(np.prod(s.shape))
            blocks.append(in_unflatten(jac[start:start + size].reshape(s.shape + (n,)),
                                       tuple(s.shape)))
            start += size
        return tree_util.tree_unflatten(out_tree, blocks)
    if fam == "jvp":
        vz = np.concatenate([np.ravel(np.asarray(t)) for t in tree_util.tree_leaves(v)])
        vz = vz.astype(z0.dtype)
        h = np.finfo(np.float64).eps ** (1 / 3) * scale / max(1.0, float(np.max(np.abs(vz))))
        d = (np.asarray(F(z0 + h * vz)) - np.asarray(F(z0 - h * vz))) / (2 * h)
        return out_unflatten(np.asarray(F(z0))), out_unflatten(d)
    h = np.finfo(np.float64).eps ** (1 / 4) * scale
    if fam == "hessian":
        H = np.empty((n, n), dtype=z0.dtype)
        for i in range(n):
            for j in range(i, n):
                ei, ej = h * eye[i], h * eye[j]
                fpp, fpm, fmp, fmm = values([z0 + ei + ej, z0 + ei - ej, z0 - ei + ej,
                                             z0 - ei - ej])[:, 0]
                H[i, j] = H[j, i] = (fpp - fpm - fmp + fmm) / (4 * h * h)
        # jacfwd(jacrev(f)) structure: input tree (gradient) of input trees.
        blocks, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            blocks.append(in_unflatten(H[start:start + size].reshape(shape + (n,)), shape))
            start += size
        return tree_util.tree_unflatten(in_tree, blocks)
    if fam == "hvp":
        vz = np.concatenate([np.ravel(np.asarray(t)) for t in tree_util.tree_leaves(v)])
        vz = vz.astype(z0.dtype)
        hv = h / max(1.0, float(np.max(np.abs(vz))))
        out = np.empty(n, dtype=z0.dtype)
        for i in range(n):
            ei, dv = h * eye[i], hv * vz
            fpp, fpm, fmp, fmm = values([z0 + ei + dv, z0 + ei - dv, z0 - ei + dv,
                                         z0 - ei - dv])[:, 0]
            out[i] = (fpp - fpm - fmp + fmm) / (4 * h * hv)
        return in_unflatten(out)
    raise AssertionError(fam)


# ------------------------------------------------------------------------------------------------
# Comparison.

# (rtol, atol) by reference kind and precision. atol is scaled by the largest magnitude in the
# reference (a Hessian with entries of 1e3 is not held to 1e-5 absolute).
#  - "jax": plain JAX, same precision: jaxworld differs only by XLA reassociation.
#  - "fd": float64 central differences: truncation ~1e-8 relative; a float32 result is itself
#    only good to ~1e-6 times the problem's conditioning.
#  - "analytic": a formula given by the scenario.
# This is jaxworld's one tolerance table: tests/helpers.py reads it through `tolerance`.
_TOLERANCES = {
    "jax": {16: (1e-2, 1e-2), 32: (2e-5, 2e-5), 64: (1e-10, 1e-10)},
    "fd": {32: (2e-3, 2e-3), 64: (1e-6, 1e-6)},
    "analytic": {32: (1e-4, 1e-4), 64: (1e-8, 1e-8)},
}


def tolerance(dtype: Any, reference: str = "jax") -> tuple[float, float]:
    """(rtol, atol) for a result of `dtype` compared with `reference` (exact for non-floats).

    The atol is relative to the reference's largest magnitude in `compare`, absolute for a caller
    comparing leaf by leaf (tests/helpers.py).
    """
    dtype = np.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return (0.0, 0.0)
    bits = dtype.itemsize * 8 // (2 if jnp.issubdtype(dtype, jnp.complexfloating) else 1)
    table = _TOLERANCES[reference]
    return table.get(bits, table[min(table, key=lambda b: abs(b - bits))])


@dataclasses.dataclass
class Comparison:
    """How far the result is from one reference."""

    reference: str
    max_abs: float
    max_rel: float
    rtol: float
    atol: float
    ok: bool
    note: str = ""

    def short(self) -> str:
        return f"abs {self.max_abs:.2e} rel {self.max_rel:.2e}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _precision(tree: Any) -> int:
    for leaf in tree_util.tree_leaves(tree):
        dtype = np.asarray(leaf).dtype
        if dtype in (np.float64, np.complex128):
            return 64
    return 32


def compare(actual: Any, expected: Any, reference: str, *, rtol: float | None = None,
            atol: float | None = None, check_dtype: bool = True) -> Comparison:
    """Compare two pytrees leafwise: ``|a - e| <= atol + rtol * |e|`` everywhere."""
    d_rtol, d_atol = _TOLERANCES[reference][_precision(actual)]
    a_leaves, a_tree = tree_util.tree_flatten(actual)
    e_leaves, e_tree = tree_util.tree_flatten(expected)
    if a_tree != e_tree:
        return Comparison(reference, float("inf"), float("inf"), d_rtol, d_atol, False,
                          f"pytree structure differs: got {a_tree}, expected {e_tree}")
    e_arrays = [np.asarray(e) for e in e_leaves]
    magnitude = max([float(np.max(np.abs(e))) for e in e_arrays if e.size and
                     np.all(np.isfinite(e))] + [1.0])
    use_rtol = d_rtol if rtol is None else rtol
    use_atol = d_atol * magnitude if atol is None else atol
    max_abs = max_rel = 0.0
    ok, note = True, ""
    for a, e in zip(a_leaves, e_arrays, strict=True):
        a = np.asarray(a)
        if a.shape != e.shape:
            return Comparison(reference, float("inf"), float("inf"), use_rtol, use_atol, False,
                              f"shape differs: got {a.shape}, expected {e.shape}")
        if check_dtype and a.dtype != e.dtype:
            return Comparison(reference, float("inf"), float("inf"), use_rtol, use_atol, False,
                              f"dtype differs: got {a.dtype}, expected {e.dtype}")
        if a.size == 0:
            continue
        kind = np.complex128 if (np.iscomplexobj(a) or np.iscomplexobj(e)) else np.float64
        a64, e64 = a.astype(kind), e.astype(kind)
        same_nan = np.isnan(a64) & np.isnan(e64)
        diff = np.where(same_nan, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        # Relative error over the entries that are not negligible (|e| > atol): entries that
        # should be zero have no meaningful relative error.
        significant = np.abs(e64) > use_atol
        rel = diff / np.where(significant, np.abs(e64), 1.0)
        max_abs = max(max_abs, float(np.max(diff)))
        max_rel = max(max_rel, float(np.max(np.where(significant, rel, 0.0))))
        if not np.all(diff <= use_atol + use_rtol * np.abs(e64)):
            ok = False
    return Comparison(reference, max_abs, max_rel, use_rtol, use_atol, ok, note)


def identical(a: Any, b: Any) -> bool:
    """Bitwise-equal pytrees (NaNs in the same places count as equal)."""
    a_leaves, a_tree = tree_util.tree_flatten(a)
    b_leaves, b_tree = tree_util.tree_flatten(b)
    return a_tree == b_tree and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=np.asarray(x).dtype.kind in "fc")
        for x, y in zip(a_leaves, b_leaves, strict=True))


# ------------------------------------------------------------------------------------------------
# A scenario's operator, prepared, and its references (batched and x64 variants included).


def scenario_tangent(s: Any) -> Any:
    """The tangent / cotangent of a `Scenario` (of one batch element when batched)."""
    spec = s.spec
    if s.tangent is not None or spec.family not in ("jvp", "vjp", "hvp"):
        return s.tangent
    args = unbatched(s.args, 0) if s.batched else s.args
    dyn, _ = split_static(args, s.static_argnums)
    return default_tangent(spec, bind_static(s.fun, args, s.static_argnums), dyn)


def unbatched(args: tuple, index: int) -> tuple:
    """`args` with batch element `index` of the first argument."""
    return (tree_util.tree_map(lambda x: x[index], args[0]), *args[1:])


def batch_size(args: tuple) -> int:
    leaves = tree_util.tree_leaves(args[0])
    return int(np.shape(leaves[0])[0])


def _stack(results: list) -> Any:
    return tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *results)


def prepare(s: Any, args: tuple | None = None):
    """The operator of `Scenario` `s`, as a `PreparedOperator` for the signature of `args`.

    `args` defaults to ``s.args``. A batched scenario's operator is
    ``jax.jit(jax.vmap(operator))`` over the first argument; an `outer_jit` one runs inside
    ``jax.jit``. The preparation is checked on every call: another function or another input
    signature raises `PreparationMismatchError`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, prepare
      >>> g = prepare(Scenario(lambda x: jnp.sum(x ** 2), (jnp.ones(2),), "grad"))
      >>> g(jnp.ones(2)).tolist()
      [2.0, 2.0]
    """
    from ._stability import PreparedOperator

    args = s.args if args is None else args
    spec = s.spec
    v = scenario_tangent(s)
    kw = dict(static_argnums=s.static_argnums, holomorphic=s.holomorphic, v=v, via=s.via)
    point = unbatched(args, 0) if s.batched else args
    inner, owner = build_jaxworld(s.fun, spec, point, **kw)
    call = inner
    if s.batched or s.outer_jit:
        static = {i: args[i] for i in s.static_argnums}
        n = len(args)

        def full(*dyn):
            it = iter(dyn)
            return inner(tuple(static[i] if i in static else next(it) for i in range(n)))

        n_dyn = n - len(static)
        fn = jax.vmap(full, in_axes=(0,) + (None,) * (n_dyn - 1)) if s.batched else full
        jitted = jax.jit(fn)

        def call(a):
            return jitted(*(x for i, x in enumerate(a) if i not in static))

    return PreparedOperator(s.fun, spec.name, call, owner, args, s.static_argnums)


def scenario_plain_jax(s: Any, args: tuple | None = None) -> tuple[Any, Any]:
    """Plain JAX traced fresh for `Scenario` `s`: ``(result, result of one batch element)``.

    Batched, the result is stacked over the batch; the element's result (the first) carries
    the dtypes and weak types the batched result must have. Unbatched, both are the result.
    """
    args = s.args if args is None else args
    kw = dict(static_argnums=s.static_argnums, holomorphic=s.holomorphic, v=scenario_tangent(s))
    if not s.batched:
        out = plain_jax(s.fun, s.spec, args, **kw)
        return out, out
    outs = [plain_jax(s.fun, s.spec, unbatched(args, i), **kw) for i in range(batch_size(args))]
    return _stack(outs), outs[0]


def scenario_finite_differences(s: Any) -> Any:
    kw = dict(static_argnums=s.static_argnums, holomorphic=s.holomorphic, v=scenario_tangent(s))
    if not s.batched:
        return finite_differences(s.fun, s.spec, s.args, **kw)
    return _stack([finite_differences(s.fun, s.spec, unbatched(s.args, i), **kw)
                   for i in range(batch_size(s.args))])


def scenario_analytic(s: Any) -> Any:
    ref = s.reference
    if not s.batched:
        return ref(*s.args) if callable(ref) else ref
    n = batch_size(s.args)
    if callable(ref):
        return _stack([ref(*unbatched(s.args, i)) for i in range(n)])
    return _stack([ref] * n)


def scenario_fd_applicable(s: Any) -> str | None:
    args = unbatched(s.args, 0) if s.batched else s.args
    return fd_applicable(s.spec, args, s.holomorphic)
