"""Scenarios as pytest tests: `parametrize(scenarios)` and `assert_passes(scenario)`.

pytest is imported only when `parametrize` is called: jaxworld does not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._check import run_case
from ._scenario import Scenario, WorldScenario, as_scenario_list


def parametrize(scenarios: Any, argname: str = "scenario",
                marks: Callable[[Any], Any] | None = None) -> Callable:
    """A `pytest.mark.parametrize` over scenarios, with each scenario's name as its test id.

    Args:
      scenarios: a list of `Scenario` / `WorldScenario`, or a zero-argument callable
        returning one (called at collection).
      argname: the test function's parameter that receives each scenario.
      marks: optional ``marks(scenario)`` returning a pytest mark, a sequence of marks or None
        for that scenario (e.g. ``pytest.mark.slow`` for all but a representative slice).

    Raises:
      TypeError: `scenarios` is not a list of scenarios.
      ValueError: two scenarios have the same name (names are the test ids).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, assert_passes, parametrize
      >>> @parametrize([Scenario(lambda x: jnp.sum(x ** 3), (jnp.ones(2),), "hessian")])
      ... def test_nested_ad(scenario):
      ...     assert_passes(scenario)
    """
    import pytest

    cases = as_scenario_list(scenarios, "jaxworld.testing.parametrize")
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"jaxworld.testing.parametrize: scenario names must be unique (they are the test "
            f"ids); repeated: {', '.join(map(repr, duplicates))}. Pass name=... to Scenario.")
    if marks is None:
        return pytest.mark.parametrize(argname, cases, ids=names)
    params = []
    for case in cases:
        case_marks = marks(case)
        if case_marks is None:
            case_marks = ()
        elif not isinstance(case_marks, (list, tuple)):
            case_marks = (case_marks,)
        params.append(pytest.param(case, id=case.name, marks=tuple(case_marks)))
    return pytest.mark.parametrize(argname, params)


def assert_passes(scenario: Scenario | WorldScenario) -> None:
    """Run one scenario; raise AssertionError with every failed reference and its error size.

    Raises:
      TypeError: `scenario` is not a `Scenario` or `WorldScenario`.
      AssertionError: the scenario failed (the message names each failed reference).
    """
    if not isinstance(scenario, (Scenario, WorldScenario)):
        raise TypeError(
            "jaxworld.testing.assert_passes: expected a Scenario or WorldScenario, got "
            f"{type(scenario).__name__}.")
    row = run_case(scenario)
    if not row.ok:
        raise AssertionError(f"{row.name} [{row.operator}] {row.status}: {row.message}")
