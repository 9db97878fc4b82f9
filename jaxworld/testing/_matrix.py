"""One-line scenario matrices: `scenarios_for(fn, *args)` (issue #15, item 1).

Every operator that applies to `fn` at `args`, every Hessian mode, through both vias (jaxworld's
prepared operators and plain JAX on ``jaxworld.wrap(fn)``). Applicability is decided from what
`fn` returns (``jax.eval_shape``); what plain JAX itself cannot do is found by lowering plain
JAX's own computation (nothing is compiled), and is skipped with the JAX limitation named (or, with
``expect_errors=True``, kept as a case that expects JAX's own error from jaxworld).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import tree_util

from .._operators import HESSIAN_MODES
from ._references import _jax_computation, bind_static, default_tangent, split_static
from ._scenario import OPERATORS, VIAS, Scenario, _fun_name, parse_operator
from ._world import fresh_function


class Skipped(NamedTuple):
    """An operator `scenarios_for` did not make a case of, and why."""

    operator: str
    via: str
    reason: str


class ScenarioList(list):
    """A list of scenarios that also says what was skipped (``.skipped``: `Skipped` tuples)."""

    def __init__(self, scenarios: Iterable = (), skipped: Iterable[Skipped] = ()):
        super().__init__(scenarios)
        self.skipped: list[Skipped] = list(skipped)


# Plain JAX's own limitations, recognised by the first line of the error JAX raises.
_LIMITATIONS = (
    ("Reverse-mode differentiation does not work for lax.while_loop",
     "JAX cannot differentiate lax.while_loop / fori_loop with dynamic bounds in reverse mode"),
    ("can't apply forward-mode autodiff (jvp) to a custom_vjp function",
     "JAX cannot apply forward mode to a custom_vjp function (jax #16049)"),
)


def name_limitation(error: BaseException) -> str:
    """A short name for the JAX limitation behind `error` (or its first line)."""
    text = str(error)
    for needle, name in _LIMITATIONS:
        if needle in text:
            return name
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"plain JAX raises {type(error).__name__}: {first[:120]}"


def _inexact_leaves(tree: Any) -> tuple[bool, bool]:
    """(all leaves inexact, some leaf complex)."""
    leaves = tree_util.tree_leaves(tree)
    dtypes = [jnp.result_type(x) for x in leaves]
    return (bool(leaves) and all(jnp.issubdtype(d, jnp.inexact) for d in dtypes),
            any(jnp.issubdtype(d, jnp.complexfloating) for d in dtypes))


def _candidates(operators: Iterable[str] | None, modes: Iterable[str] | None) -> list[str]:
    api = "jaxworld.testing.scenarios_for"
    modes = tuple(HESSIAN_MODES if modes is None else modes)
    for mode in modes:
        parse_operator(f"hessian:{mode}", api)
    out: list[str] = []
    for op in (OPERATORS if operators is None else operators):
        spec = parse_operator(op, api)
        if spec.family == "hessian" and ":" not in op:
            out += [f"hessian:{m}" for m in modes]
        else:
            out.append(spec.name)
    return list(dict.fromkeys(out))


def scenarios_for(fn: Callable, *args: Any, operators: Iterable[str] | None = None,
                  modes: Iterable[str] | None = None, vias: Iterable[str] = VIAS,
                  tags: Iterable[str] | str = (), name: str | None = None,
                  static_argnums: tuple[int, ...] = (), holomorphic: bool | None = None,
                  expect_errors: bool = False, **scenario_fields: Any) -> ScenarioList:
    """Every applicable operator and Hessian mode of `fn` at `args`, through both vias.

    Args:
      fn: the function; differentiated with respect to its first argument.
      *args: its arguments.
      operators: operator names to consider (default: all of `OPERATORS`); ``"hessian"``
        stands for every mode in `modes`.
      modes: Hessian modes (default: all of `jaxworld.HESSIAN_MODES`).
      vias: ``"operator"`` (jaxworld's prepared operators) and/or ``"wrap"`` (plain JAX on
        ``jaxworld.wrap(fn)``). ``third_order`` has one via (it is always the latter).
      tags: labels given to every case.
      name: the prefix of the case names (default: `fn`'s name); cases are named
        ``"<name>: <operator>"`` and ``"<name> via wrap: <operator>"``.
      static_argnums, holomorphic: as for `Scenario` (`holomorphic` defaults to True when the
        first argument is complex).
      expect_errors: keep an operator plain JAX cannot do as a case expecting JAX's own error
        from jaxworld (named after the limitation) instead of skipping it.
      **scenario_fields: any other `Scenario` field (``reference``, ``rtol``, ``prepare_args``,
        ``tangent``, ...), given to every case.

    Returns:
      A list of `Scenario`; its ``.skipped`` lists `Skipped` (operator, via, reason) for what
      does not apply (a non-scalar output for ``grad``, ...) or what plain JAX cannot do.

    Raises:
      TypeError: `fn` is not callable.
      ValueError: no arguments are given, or `vias` is not a non-empty subset of ('operator',
        'wrap').

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import scenarios_for
      >>> cases = scenarios_for(lambda x: jnp.sum(jnp.sin(x)), jnp.ones(3), name="sum sin")
      >>> len(cases), cases[0].name
      (23, 'sum sin: value')
      >>> vector = scenarios_for(lambda x: jnp.sin(x), jnp.ones(3), vias=("operator",))
      >>> [s.operator for s in vector], vector.skipped[0].reason
      (['value', 'jvp', 'vjp', 'jacfwd', 'jacrev'], 'the output is not a real scalar')
    """
    api = "jaxworld.testing.scenarios_for"
    if not callable(fn):
        raise TypeError(f"{api}: fn must be callable, got {type(fn).__name__} {fn!r:.60}. "
                        "Usage: scenarios_for(f, x, y).")
    if not args:
        raise ValueError(f"{api}: give the arguments, e.g. scenarios_for(f, x); the first one is "
                         "differentiated.")
    vias = tuple(vias)
    bad = [v for v in vias if v not in VIAS]
    if bad or not vias:
        raise ValueError(f"{api}: vias must be a non-empty subset of {VIAS}, got {vias}.")
    static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(
        static_argnums)
    prefix = name or _fun_name(fn)
    tags = (tags,) if isinstance(tags, str) else tuple(tags)

    dyn, _ = split_static(args, static_argnums)
    bound = bind_static(fresh_function(fn), args, static_argnums)
    out_shape = jax.eval_shape(bound, *dyn)
    all_inexact, complex_in = _inexact_leaves(args[0]) if 0 not in static_argnums else (
        False, False)
    if holomorphic is None:
        holomorphic = complex_in
    out_leaves = tree_util.tree_leaves(out_shape)
    real_scalar = (len(out_leaves) == 1 and out_leaves[0].shape == ()
                   and jnp.issubdtype(out_leaves[0].dtype, jnp.floating))
    scalar_for_grad = (len(out_leaves) == 1 and out_leaves[0].shape == () and (
        jnp.issubdtype(out_leaves[0].dtype, jnp.complexfloating) if holomorphic
        else jnp.issubdtype(out_leaves[0].dtype, jnp.floating)))
    n_dynamic = len(args) - len(static_argnums)

    def not_applicable(op: str) -> str | None:
        family = parse_operator(op).family
        if family == "value":
            return None
        if not all_inexact:
            return "the first argument has non-floating leaves (only 'value' applies)"
        if family in ("grad", "hessian", "third_order") and not scalar_for_grad:
            return ("the output is not a complex scalar (holomorphic)" if holomorphic
                    else "the output is not a real scalar")
        if family == "hvp":
            if not real_scalar or holomorphic:
                return "the output is not a real scalar"
            if n_dynamic != 1:
                return f"'hvp' is for functions of one argument ({n_dynamic} non-static)"
        if holomorphic and family in ("jvp", "vjp", "hvp"):
            return "complex jvp/vjp conventions are not checked by scenarios_for"
        return None

    def jax_limitation(op: str) -> BaseException | None:
        spec = parse_operator(op)
        v = (default_tangent(spec, bound, dyn) if spec.family in ("jvp", "vjp", "hvp")
             else None)
        computation = _jax_computation(bind_static(fresh_function(fn), args, static_argnums),
                                       spec, holomorphic, v)
        try:
            # Lowered, not only traced: some limitations (forward mode of a custom_vjp under
            # jax.jvp) are raised while lowering. Nothing is compiled.
            jax.jit(computation).lower(*dyn)
        except Exception as e:  # noqa: BLE001 - what plain JAX raises is the answer
            return e
        return None

    scenarios, skipped = [], []
    for op in _candidates(operators, modes):
        op_vias = ("operator",) if op == "third_order" else vias
        if op == "third_order" and "operator" not in vias:
            op_vias = ("wrap",)
        why = not_applicable(op)
        if why is not None:
            skipped += [Skipped(op, via, why) for via in op_vias]
            continue
        error = jax_limitation(op)
        for via in op_vias:
            label = prefix if via == "operator" or op == "third_order" else f"{prefix} via wrap"
            fields = dict(scenario_fields, static_argnums=static_argnums,
                          holomorphic=holomorphic, via=via, tags=tags)
            if error is None:
                scenarios.append(Scenario(fn, tuple(args), op, name=f"{label}: {op}", **fields))
            elif expect_errors:
                limitation = name_limitation(error)
                scenarios.append(Scenario(
                    fn, tuple(args), op, expect_error=type(error),
                    name=f"{label}: {op} ({limitation}; expects its {type(error).__name__})",
                    **fields))
            else:
                skipped.append(Skipped(op, via, name_limitation(error)))
    return ScenarioList(scenarios, skipped)
