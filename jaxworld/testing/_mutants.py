"""Staleness mutation testing: `mutants(scenario)` (issue #15, item 3).

From the dependency record of a scenario's function (``DependencyRecord.capture(fun).sites()``:
the user-level places its trace read), derive one `WorldScenario` per dependency that changes it
the way a user would between two notebook cells:

- a helper function (kind ``"function"``) wrapped so that its output is scaled;
- a float global or instance field (``"number"``) nudged;
- a NumPy array (``"array"``) edited in place (a JAX array, immutable, is rebound to an edited
  copy);
- a method (``"method"``) replaced on its class by one whose output is scaled.

Each mutant prepares the scenario's operator, applies the change, advances the world and expects
the operator to follow: its answer must equal plain JAX traced fresh on the changed code, and it
must have re-traced. If jaxworld stopped tracking a kind of dependency, the mutants of that kind
fail, each named after the dependency it changed. Every mutation is undone after its case.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from jax import tree_util

from ._matrix import ScenarioList, Skipped
from ._scenario import Scenario, WorldScenario, as_scenario_list

# WorldScenario has no jvp/vjp (they are not prepared objects): the Jacobian in the same mode.
_WORLD_OPERATOR = {"jvp": "jacfwd", "vjp": "jacrev"}


def _scale_output(original: Callable, factor: float) -> Callable:
    @functools.wraps(original)
    def scaled(*args, **kwargs):
        return tree_util.tree_map(lambda y: _times(y, factor), original(*args, **kwargs))

    # `functools.wraps` sets __wrapped__; a walk that follows it must still see a new function.
    scaled.__qualname__ = f"{getattr(original, '__qualname__', 'helper')} (scaled by {factor})"
    return scaled


def _times(y: Any, factor: float) -> Any:
    dtype = getattr(y, "dtype", None)
    if dtype is not None and np.issubdtype(dtype, np.inexact):
        return y * np.asarray(factor, dtype)
    if isinstance(y, (float, complex)) and not isinstance(y, bool):
        return y * factor
    return y


class _Mutation:
    """One change of one dependency, and how to put it back."""

    def __init__(self, site: Any, action: str, apply: Callable[[], None],
                 undo: Callable[[], None], short: str = "") -> None:
        self.site = site
        self.action = action  # in full, for messages
        self.short = short or action  # for the case name
        self.apply = apply
        self.undo = undo


def _mutation(site: Any, factor: float) -> _Mutation | str:
    """The mutation of `site`, or why it is not mutated."""
    kind, value = site.kind, site.value

    def rebind(new: Any, action: str, short: str) -> _Mutation:
        return _Mutation(site, action, lambda: site.set(new), lambda: site.set(value), short)

    if kind in ("function", "method"):
        if not callable(value) or isinstance(value, (staticmethod, classmethod, property)):
            return f"a {kind} of type {type(value).__name__} is not wrapped"
        if kind == "method" and site.name.startswith("__") and site.name != "__call__":
            return f"special method {site.name} is not replaced (it does not compute the output)"
        where = "replaced on its class by one" if kind == "method" else "wrapped"
        label = "method" if kind == "method" else "helper"
        verb = "replaced" if kind == "method" else "wrapped"
        return rebind(_scale_output(value, factor), f"{where} scaling its output by {factor}",
                      f"{label} '{site.name}' {verb} (output x{factor})")
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (float, complex, np.inexact)):
            return (f"a number of type {type(value).__name__} is not nudged (an integer may be "
                    "a shape, a count or an index)")
        new = value * factor + 0.25
        return rebind(new, f"nudged from {value!r} to {new!r}",
                      f"number '{site.name}' nudged {value:.4g} -> {new:.4g}")
    if kind == "array":
        dtype = getattr(value, "dtype", None)
        if dtype is None or not np.issubdtype(dtype, np.inexact):
            return f"an array of dtype {dtype} is not edited (it may hold indices or counts)"
        if isinstance(value, np.ndarray):
            if not value.flags.writeable:
                return "a read-only NumPy array is not edited in place"
            saved = value.copy()

            def edit() -> None:
                value[...] = value * factor + 0.25

            def restore() -> None:
                value[...] = saved

            action = f"edited in place (x{factor} + 0.25)"
            return _Mutation(site, action, edit, restore, f"array '{site.name}' {action}")
        action = f"rebound to a copy x{factor} + 0.25 (immutable JAX array)"
        return rebind(value * factor + 0.25, action, f"array '{site.name}' {action}")
    if isinstance(value, types.ModuleType):
        return "a module is not mutated (the attributes read from it are sites of their own)"
    return (f"a {type(value).__name__} object is not mutated (its fields and methods, when "
            "user code reads them, are sites of their own)")


def _sites(fun: Callable) -> list:
    # The interface of the dependency record (jaxworld._deps): `sites()` lists the user-level
    # places the trace read, each with `what`, `kind`, `name`, `value` and `set`.
    from .. import _deps

    return list(_deps.DependencyRecord.capture(fun).sites())


def mutants(scenario: Scenario, *, factor: float = 1.5) -> ScenarioList:
    """One world scenario per user-level dependency of `scenario`'s function.

    Args:
      scenario: a `Scenario`; its function, arguments, operator (``jvp``/``vjp`` become
        ``jacfwd``/``jacrev``), via and static arguments are used.
      factor: how much helpers' outputs are scaled, numbers and arrays multiplied (plus 0.25).

    Returns:
      A list of `WorldScenario` named ``"world: mutant of <case>: <change>"`` (its description
      names the dependency in full: how the trace reached it) and tagged ``"mutant"`` and the
      kind; ``.skipped`` lists the dependencies that are not mutated, with why.
      The sites are read now: derive the mutants before anything changes what is tracked.

    Raises:
      TypeError: `scenario` is not a `jaxworld.testing.Scenario`.
      ValueError: the scenario was made by batchify, jitify or x64ify.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, check, mutants
      >>> SCALE = 2.0
      >>> def f(x):
      ...     return jnp.sum(jnp.sin(SCALE * x) ** 2)
      >>> cases = mutants(Scenario(f, (jnp.ones(3),), "hessian"))
      >>> [c.name for c in cases]  # doctest: +ELLIPSIS
      ["world: mutant of f:hessian:fwd_over_rev: number 'SCALE' nudged 2 -> 3.25"]
      >>> check(cases).ok
      True
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(
            "jaxworld.testing.mutants: expected a jaxworld.testing.Scenario, got "
            f"{type(scenario).__name__}.")
    if scenario.batched or scenario.outer_jit or scenario.x64 is not None:
        raise ValueError(
            f"jaxworld.testing.mutants: scenario {scenario.name!r} was made by a modifier "
            "(batchify, jitify or x64ify); derive mutants of the scenario it came from.")
    fun = scenario.fun
    operator = scenario.operator
    operator = _WORLD_OPERATOR.get(scenario.spec.family, operator)
    out, skipped = [], []
    for site in _sites(fun):
        mutation = _mutation(site, factor)
        if isinstance(mutation, str):
            skipped.append(Skipped(operator, scenario.via, f"{site.what}: {mutation}"))
            continue
        out.append(WorldScenario(
            f"world: mutant of {scenario.name}: {mutation.short}",
            setup=functools.partial(_bind, fun),
            change=_applier(mutation),
            operator=operator, args=scenario.args, expect="follows",
            prepare_args=scenario.prepare_args, rtol=scenario.rtol, atol=scenario.atol,
            tags=(*scenario.tags, "mutant", site.kind), via=scenario.via,
            static_argnums=scenario.static_argnums, holomorphic=scenario.holomorphic,
            undo=mutation.undo,
            description=f"the {site.kind} dependency {site.what}, {mutation.action}"))
    return ScenarioList(out, skipped)


def _bind(fun: Callable, world: Any) -> None:
    world["f"] = fun


def _applier(mutation: _Mutation) -> Callable[[Any], None]:
    def change(world: Any) -> None:
        mutation.apply()

    return change


def mutants_of(scenarios: Iterable, *, factor: float = 1.5) -> ScenarioList:
    """The mutants of the distinct functions among `scenarios` (what ``--mutate`` runs).

    One set per function: that of its highest-order scenario (a Hessian rather than a gradient),
    skipping scenarios made by modifiers and those expecting a JAX error.

    Raises:
      TypeError: an item of `scenarios` is not a `Scenario` or `WorldScenario`.
    """
    chosen: dict[int, Scenario] = {}
    order: list[int] = []
    for s in as_scenario_list(list(scenarios), "jaxworld.testing.mutants_of"):
        if (not isinstance(s, Scenario) or s.expect_error is not None or s.batched
                or s.outer_jit or s.x64 is not None):
            continue
        key = id(s.fun)
        if key not in chosen:
            order.append(key)
            chosen[key] = s
        elif s.spec.order > chosen[key].spec.order:
            chosen[key] = s
    out, skipped = ScenarioList(), []
    for key in order:
        derived = mutants(chosen[key], factor=factor)
        out.extend(derived)
        skipped.extend(derived.skipped)
    out.skipped = skipped
    return out
