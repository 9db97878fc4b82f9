"""Scenario modifiers: functions from scenarios to scenarios (issue #15, item 2).

Like DifferentiationInterfaceTest's ``closurify``/``constantify``/``batchify``, each derives a
variant of any `Scenario` that must give the same verdict: the arguments after the first captured
in a closure, an extra constant argument, the vmapped operator against a stacked reference, the
operator inside an outer ``jax.jit``, the other ``jax_enable_x64`` setting. The variant's name
says which modifier made it (``"sin_sq: grad [closurify]"``) and it carries the modifier as a
tag, so ``jaxworld check -k closurify`` selects them.

A modifier that does not apply to a scenario raises ValueError saying why; `applicable` tells
beforehand.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax import tree_util

from ._scenario import Scenario


def _check(s: Any, modifier: str) -> None:
    if not isinstance(s, Scenario):
        raise TypeError(
            f"jaxworld.testing.{modifier}: expected a jaxworld.testing.Scenario, got "
            f"{type(s).__name__}. (World scenarios change code; modifiers derive variants of "
            "plain scenarios.)")


def _variant(s: Scenario, modifier: str, **changes: Any) -> Scenario:
    return s.replace(name=f"{s.name} [{modifier}]", tags=(*s.tags, modifier), **changes)


def closurify(s: Scenario) -> Scenario:
    """The arguments after the first are captured in a closure: ``lambda x: fun(x, *rest)``.

    Raises:
      TypeError: `s` is not a `jaxworld.testing.Scenario` (world scenarios have no variants).
      ValueError: the scenario has one argument (nothing to close over).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, closurify
      >>> s = closurify(Scenario(lambda x, y: jnp.sum(x * y), (jnp.ones(2), jnp.ones(2)), "grad",
      ...                        name="dot"))
      >>> s.name, len(s.args)
      ('dot [closurify]', 1)
    """
    _check(s, "closurify")
    if len(s.args) == 1:
        raise ValueError(f"jaxworld.testing.closurify: scenario {s.name!r} has one argument; "
                         "there is nothing to capture.")
    fun, rest = s.fun, s.args[1:]

    def closure(x):
        return fun(x, *rest)

    closure.__name__ = f"closure of {getattr(fun, '__name__', type(fun).__name__)}"
    reference = s.reference
    if callable(reference):
        original = reference

        def reference(x):
            return original(x, *rest)

    prepare_args = None if s.prepare_args is None else s.prepare_args[:1]
    return _variant(s, "closurify", fun=closure, args=s.args[:1], reference=reference,
                    prepare_args=prepare_args, static_argnums=())


def _scaled(tree: Any, c: Any) -> Any:
    return tree_util.tree_map(lambda y: y * c, tree)


def constantify(s: Scenario, constant: Any = None) -> Scenario:
    """An extra constant argument ``c`` (held fixed, not differentiated): ``fun(*args) * c``.

    Every operator is linear in the output, so the analytic reference (if any) is scaled by
    ``c`` too. `constant` defaults to 1.5 in the first argument's floating dtype.

    Raises:
      TypeError: `s` is not a `jaxworld.testing.Scenario` (world scenarios have no variants).
      ValueError: the scenario's operator is 'hvp' (a function of one argument).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, check, constantify
      >>> s = constantify(Scenario(lambda x: jnp.sum(x ** 2), (jnp.ones(2),), "grad",
      ...                          reference=lambda x: 2 * x))
      >>> check([s]).ok
      True
    """
    _check(s, "constantify")
    if s.spec.family == "hvp":
        raise ValueError("jaxworld.testing.constantify: 'hvp' is for functions of one argument; "
                         "a constant argument would make two.")
    if constant is None:
        leaves = tree_util.tree_leaves(s.args[0])
        dtype = np.result_type(*(np.asarray(x).dtype for x in leaves)) if leaves else np.float32
        if not np.issubdtype(dtype, np.inexact):
            dtype = np.float32
        constant = np.asarray(1.5, dtype=dtype)
    fun, n = s.fun, len(s.args)

    def with_constant(*a):
        return _scaled(fun(*a[:n]), a[n])

    with_constant.__name__ = f"{getattr(fun, '__name__', type(fun).__name__)} times a constant"
    reference = s.reference
    if callable(reference):
        original = reference

        def reference(*a):
            return _scaled(original(*a[:n]), np.asarray(a[n]))
    elif reference is not None:
        reference = _scaled(reference, np.asarray(constant))
    prepare_args = None if s.prepare_args is None else (*s.prepare_args, constant)
    return _variant(s, "constantify", fun=with_constant, args=(*s.args, constant),
                    reference=reference, prepare_args=prepare_args)


def batchify(s: Scenario, size: int = 3) -> Scenario:
    """The vmapped operator over a batch of `size` points of the first argument, against the
    stacked per-point references (``jax.jit(jax.vmap(operator))``).

    The batch holds the scenario's point scaled by 1, 0.9, 1.1, ... (all different points).

    Raises:
      TypeError: `s` is not a `jaxworld.testing.Scenario` (world scenarios have no variants).
      ValueError: the scenario is already batched, `size` is not a positive int, or argument 0 is
        static.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, batchify
      >>> s = batchify(Scenario(lambda x: jnp.sum(x ** 3), (jnp.ones(2),), "hessian"))
      >>> s.args[0].shape, s.batched
      ((3, 2), True)
    """
    _check(s, "batchify")
    if s.batched:
        raise ValueError(f"jaxworld.testing.batchify: scenario {s.name!r} is already batched.")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"jaxworld.testing.batchify: size must be a positive int, got {size!r}.")
    if 0 in s.static_argnums:
        raise ValueError("jaxworld.testing.batchify: argument 0 is static; nothing to map over.")
    factors = [1.0 + 0.1 * ((k + 1) // 2) * (-1) ** k for k in range(size)]

    def stack(tree):
        return tree_util.tree_map(
            lambda x: np.stack([np.asarray(x) * np.asarray(f, np.asarray(x).dtype)
                                for f in factors]), tree)

    args = (stack(s.args[0]), *s.args[1:])
    prepare_args = None if s.prepare_args is None else (stack(s.prepare_args[0]),
                                                        *s.prepare_args[1:])
    return _variant(s, "batchify", args=args,
                    prepare_args=prepare_args, batched=True)


def jitify(s: Scenario) -> Scenario:
    """The operator called inside an outer ``jax.jit``.

    Raises:
      TypeError: `s` is not a `jaxworld.testing.Scenario` (world scenarios have no variants).
      ValueError: the scenario already runs under an outer jax.jit.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, jitify
      >>> jitify(Scenario(lambda x: jnp.sum(x ** 3), (jnp.ones(2),), "hvp")).outer_jit
      True
    """
    _check(s, "jitify")
    if s.outer_jit or s.batched:
        raise ValueError(f"jaxworld.testing.jitify: scenario {s.name!r} already runs under an "
                         "outer jax.jit.")
    return _variant(s, "jitify", outer_jit=True)


def x64ify(s: Scenario) -> Scenario:
    """The scenario under the other ``jax_enable_x64`` setting than the current one.

    Floating and complex leaves of the arguments (and of `tangent`, `prepare_args`) are converted
    to the precision of that setting, so the whole computation runs in it.

    Raises:
      TypeError: `s` is not a `jaxworld.testing.Scenario` (world scenarios have no variants).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, x64ify
      >>> s = x64ify(Scenario(lambda x: jnp.sum(x ** 3), (jnp.ones(2),), "grad"))
      >>> s.x64 == (not jax.config.jax_enable_x64), str(s.args[0].dtype)
      (True, 'float64')
    """
    _check(s, "x64ify")
    x64 = not (jax.config.jax_enable_x64 if s.x64 is None else s.x64)
    convert = _converter(x64)
    args = tuple(a if i in s.static_argnums else convert(a) for i, a in enumerate(s.args))
    prepare_args = None if s.prepare_args is None else tuple(
        a if i in s.static_argnums else convert(a) for i, a in enumerate(s.prepare_args))
    tangent = None if s.tangent is None else convert(s.tangent)
    reference = s.reference
    if reference is not None and not callable(reference):
        reference = convert(reference)
    return _variant(s, "x64ify", args=args, prepare_args=prepare_args,
                    tangent=tangent, reference=reference, x64=x64)


def _converter(x64: bool) -> Callable[[Any], Any]:
    to = {("f", True): np.float64, ("f", False): np.float32,
          ("c", True): np.complex128, ("c", False): np.complex64}

    def leaf(x):
        arr = np.asarray(x)
        target = to.get((arr.dtype.kind, x64))
        if target is None:
            return x
        # NumPy arrays, not JAX arrays: a float64 JAX array cannot exist while x64 is off.
        return arr.astype(target)

    return functools.partial(tree_util.tree_map, leaf)


MODIFIERS: dict[str, Callable[[Scenario], Scenario]] = {
    "closurify": closurify, "constantify": constantify, "batchify": batchify,
    "jitify": jitify, "x64ify": x64ify,
}


def applicable(modifier: Callable[[Scenario], Scenario], s: Scenario) -> bool:
    """True when `modifier` can derive a variant of `s` (it would not raise ValueError)."""
    try:
        modifier(s)
    except ValueError:
        return False
    return True
