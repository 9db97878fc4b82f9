"""Argument filtering for `jaxworld.wrap`: any pytree goes in (issue #14).

Array leaves are traced; every other leaf — a function, a string, an `eqx.nn.MLP`'s activation,
any object — is *static*: part of the input signature, held by equality when it is hashable and
by identity when it is not (so unhashable objects work too). The rule is `jax.jit`'s for every
value `jax.jit` accepts (JAX and NumPy arrays, NumPy scalars and Python scalars are traced) and
`equinox.filter_jit`'s for every value `jax.jit` rejects, so it changes the meaning of no
program that `jax.jit` runs. ``wrap(..., static_scalars=True)`` also makes Python scalars
(`bool`, `int`, `float`, `complex`) static, as `equinox.filter_jit` does: for Modules whose
Python-scalar fields drive Python control flow (`eqx.nn.Dropout.inference`).

A static leaf is carried *inside the tree structure*: `filter_leaves` replaces it by a
`_StaticLeaf` pytree node with no children whose auxiliary data is the value's key, and whose
unflatten returns the value itself. So the cache key keeps its form ``(in_tree, avals, static)``
(a static leaf's key is part of ``in_tree``), ``tree_unflatten(in_tree, arrays)`` rebuilds the
full arguments, static leaves included, and an output tree built the same way gives static
outputs back (a step function returning an updated `eqx.nn.MLP`, activations and all).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax import tree_util

from ._compat import Tracer, shaped_abstractify

_SCALARS = (bool, int, float, complex)
_ARRAY_TYPES = (jax.Array, Tracer, np.ndarray, np.generic)


class StaticKey:
    """A static value as a cache key: equality when hashable, identity when not.

    Type-aware: ``1``, ``1.0`` and ``True`` are equal in Python but can trace differently, so
    they are different keys. Holds the value: the key keeps it alive while an entry uses it, so
    an identity never refers to a freed object.
    """

    __slots__ = ("value", "_hash", "_by_identity")

    def __init__(self, value: Any):
        self.value = value
        try:
            self._hash = hash((type(value), value))
            self._by_identity = False
        except TypeError:
            self._hash = id(value)
            self._by_identity = True

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StaticKey):
            return NotImplemented
        a, b = self.value, other.value
        if a is b:
            return True
        if self._by_identity or other._by_identity or type(a) is not type(b):
            return False
        try:
            return bool(a == b)
        except Exception:  # an __eq__ that raises or returns an array: not the same key
            return False

    def __repr__(self) -> str:
        return f"{self.value!r:.60}"


def is_traced(leaf: Any, static_scalars: bool = False) -> bool:
    """Whether a leaf is traced (an array-like JAX type) rather than static."""
    if isinstance(leaf, _ARRAY_TYPES):
        return True
    if type(leaf) in _SCALARS:
        return not static_scalars
    return hasattr(leaf, "__jax_array__")


# Types seen to be traced (with `static_scalars=False`): `all_traced` checks a whole tree's
# leaves with one set comparison on the eager fast path (issue #14, eager dispatch).
_TRACED_TYPES: set[type] = set(_SCALARS)


def all_traced(leaves: list) -> bool:
    """Whether every leaf is traced (`is_traced` with the default ``static_scalars=False``)."""
    kinds = set(map(type, leaves))
    if kinds <= _TRACED_TYPES:
        return True
    for kind, leaf in zip(map(type, leaves), leaves, strict=True):
        if kind not in _TRACED_TYPES:
            if not is_traced(leaf):
                return False
            _TRACED_TYPES.add(kind)
    return True


class _StaticLeaf:
    """A static leaf standing in a tree before flattening: flattens to no leaves."""

    __slots__ = ("key",)

    def __init__(self, key: StaticKey):
        self.key = key


tree_util.register_pytree_node(
    _StaticLeaf,
    lambda s: ((), s.key),
    lambda key, children: key.value,
)


def mark_static(tree: Any, static_scalars: bool = False) -> Any:
    """`tree` with each static leaf replaced by its `_StaticLeaf` node (for `jax.jit` outputs)."""
    leaves, treedef = tree_util.tree_flatten(tree)
    if all(is_traced(x, static_scalars) for x in leaves):
        return tree
    return tree_util.tree_unflatten(
        treedef, [x if is_traced(x, static_scalars) else _StaticLeaf(StaticKey(x)) for x in leaves])


def filter_leaves(tree: Any, static_scalars: bool = False):
    """Flatten `tree` into (traced leaves, treedef); static leaves live in the treedef.

    ``tree_unflatten(treedef, traced)`` gives back `tree` with every static leaf in place.
    """
    leaves, treedef = tree_util.tree_flatten(tree)
    if all(is_traced(x, static_scalars) for x in leaves):
        return leaves, treedef
    marked = [x if is_traced(x, static_scalars) else _StaticLeaf(StaticKey(x)) for x in leaves]
    return tree_util.tree_flatten(tree_util.tree_unflatten(treedef, marked))


def abstractify_all(leaves: list, tree: Any, name: str, static_scalars: bool = False) -> tuple:
    """The avals of `leaves`; one TypeError naming every leaf that is not a JAX value.

    Leaves are named by key path, as JAX does (``args[0].layers[1].weight``), where `tree` is
    the ``(args, kwargs)`` pair the leaves came from (positions count the non-static
    arguments).
    """
    try:
        return tuple(map(shaped_abstractify, leaves))
    except (TypeError, OverflowError):
        pass
    errors = []
    avals = []
    paths = None
    for i, x in enumerate(leaves):
        try:
            avals.append(shaped_abstractify(x))
        except (TypeError, OverflowError) as e:
            if paths is None:
                paths = _traced_paths(tree, static_scalars)
            where = _argument_path(paths[i]) if i < len(paths) else f"leaf {i}"
            errors.append(f"  {where}: {type(x).__name__} {x!r:.60} ({e!s:.100})")
    if not errors:
        return tuple(avals)
    what = ("argument leaf that looks like an array but is not a valid JAX value"
            if len(errors) == 1 else
            f"{len(errors)} argument leaves that look like arrays but are not valid JAX values")
    article = "an " if len(errors) == 1 else ""
    raise TypeError(
        f"jaxworld.wrap: {name} got {article}{what}:\n" + "\n".join(errors) + "\n"
        "Expected a JAX or NumPy array of a numeric dtype, or a Python scalar in range. Pass an "
        "array (e.g. `jnp.asarray(x)`), or make the argument static with `static_argnums=` / "
        "`static_argnames=`.")


def _traced_paths(tree: Any, static_scalars: bool) -> list[str]:
    return [tree_util.keystr(path)
            for path, leaf in tree_util.tree_flatten_with_path(tree)[0]
            if is_traced(leaf, static_scalars)]


def _argument_path(path: str) -> str:
    """'[0][0].w' of an ``(args, kwargs)`` pair as 'args[0].w'; '[1]['k']' as "kwargs['k']"."""
    if path.startswith("[0]"):
        return "args" + path[3:]
    if path.startswith("[1]"):
        return "kwargs" + path[3:]
    return path
