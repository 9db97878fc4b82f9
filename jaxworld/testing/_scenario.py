"""What a regression case is: `Scenario` (one operator at one point) and `WorldScenario`
(prepare, change the code, advance, evaluate).

Both are plain frozen descriptions, validated when built so that a typo in a suite fails at
import time with a message that names the field, not later inside a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._operators import HESSIAN_MODES

# The operators a scenario can exercise. Each one differentiates with respect to the *first*
# argument; the other arguments are held fixed (they may be integers, static values or pytrees).
OPERATORS: dict[str, str] = {
    "value": "f(*args) through jaxworld.jit",
    "grad": "jaxworld.grad(f)(*args)",
    "jvp": "jaxworld.jvp(f, args, tangents): (output, tangent output) along a fixed tangent of "
           "the first argument",
    "vjp": "jaxworld.vjp(f, *args): (output, cotangent of the first argument) for a fixed output "
           "cotangent",
    "jacfwd": "jaxworld.jacfwd(f)(*args)",
    "jacrev": "jaxworld.jacrev(f)(*args)",
    "hessian": "jaxworld.hessian(f, mode=...)(*args); write 'hessian:<mode>' for a mode other "
               f"than fwd_over_rev ({', '.join(HESSIAN_MODES)})",
    "hvp": "jaxworld.hvp(f)(x, v) for a function of one argument and a fixed vector v",
    "third_order": "jax.jit(jax.jacfwd(jaxworld.hessian(f))) — the third derivative tensor",
}

# How the operator under test is built from the function:
#   "operator": jaxworld's prepared operators (jaxworld.grad, jaxworld.hessian, ...);
#   "wrap":     plain JAX transformations of jaxworld.wrap(f), jitted (the drop-in path).
VIAS = ("operator", "wrap")

_FIRST_ORDER = ("grad", "jvp", "vjp", "jacfwd", "jacrev")


@dataclasses.dataclass(frozen=True)
class OperatorSpec:
    """A parsed operator name: the family (``"hessian"``) and its mode (``"rev_over_rev"``)."""

    family: str
    mode: str | None = None

    @property
    def name(self) -> str:
        return self.family if self.mode is None else f"{self.family}:{self.mode}"

    @property
    def order(self) -> int:
        return {"value": 0, "hessian": 2, "hvp": 2, "third_order": 3}.get(self.family, 1)


def parse_operator(operator: object, api: str = "jaxworld.testing.Scenario") -> OperatorSpec:
    """Parse ``"grad"``, ``"hessian"``, ``"hessian:rev_over_rev"``, ... into an `OperatorSpec`."""
    if not isinstance(operator, str):
        raise TypeError(
            f"{api}: operator must be a string, got {type(operator).__name__} {operator!r:.60}. "
            f"Valid operators: {', '.join(map(repr, OPERATORS))}.")
    family, _, mode = operator.partition(":")
    if family not in OPERATORS:
        raise ValueError(
            f"{api}: unknown operator {operator!r}. Valid operators: "
            f"{', '.join(map(repr, OPERATORS))} (a Hessian mode is written "
            "'hessian:rev_over_rev').")
    if mode and family != "hessian":
        raise ValueError(
            f"{api}: operator {operator!r} takes no mode; only 'hessian' has modes "
            f"({', '.join(HESSIAN_MODES)}). Write {family!r}.")
    if family == "hessian":
        mode = mode or "fwd_over_rev"
        if mode not in HESSIAN_MODES:
            raise ValueError(
                f"{api}: unknown Hessian mode {mode!r} in operator {operator!r}. Valid modes: "
                f"{', '.join(map(repr, HESSIAN_MODES))} (e.g. 'hessian:rev_over_rev').")
        return OperatorSpec("hessian", mode)
    return OperatorSpec(family)


def _check_exception_type(value: object, api: str) -> None:
    if value is not None and not (isinstance(value, type) and issubclass(value, BaseException)):
        raise TypeError(
            f"{api}: expect_error must be an exception class such as ValueError or TypeError "
            f"(the error plain JAX raises for this operator), got {value!r:.60}.")


def _check_tolerance(value: object, field: str, api: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(
            f"{api}: {field} must be a non-negative number or None (the default for the "
            f"dtype and reference), got {value!r:.60}.")


def _check_tags(tags: object, api: str) -> tuple[str, ...]:
    if isinstance(tags, str):
        return (tags,)
    if not isinstance(tags, (tuple, list)) or not all(isinstance(t, str) for t in tags):
        raise TypeError(f"{api}: tags must be a tuple of strings, got {tags!r:.60}.")
    return tuple(tags)


@dataclasses.dataclass(frozen=True, eq=False)
class Scenario:
    """One nested-AD regression case: `operator` of `fun` at `args`, checked against references.

    The operator is prepared at `prepare_args` (default: a nearby point derived from `args`),
    then evaluated at `args` twice (the two results must agree exactly), and the result is
    compared with each reference separately: plain JAX traced fresh (no jaxworld), float64
    central finite differences (first and second order), and `reference` when given.

    Args:
      fun: the function. It is differentiated with respect to its first argument; the other
        arguments are held fixed.
      args: a tuple of arguments (pytrees of arrays, Python scalars, or static values).
      operator: one of `OPERATORS` — ``"value"``, ``"grad"``, ``"jvp"``, ``"vjp"``,
        ``"jacfwd"``, ``"jacrev"``, ``"hessian"`` (or ``"hessian:<mode>"`` with a mode of
        `jaxworld.HESSIAN_MODES`), ``"hvp"``, ``"third_order"``.
      name: a unique name (default ``"<fun name>:<operator>"``).
      reference: the analytic answer at `args`, or a callable ``reference(*args)`` returning it.
        For ``"jvp"``/``"vjp"`` it is the pair the operator returns.
      rtol, atol: tolerances for every reference (default: by dtype and reference kind).
      prepare_args: where the operator is prepared (same shapes and dtypes as `args`).
      tags: free-form labels (``-k`` of ``jaxworld check`` matches them too).
      static_argnums: positions of arguments that are static Python values (never 0).
      holomorphic: differentiate a complex function as holomorphic (like JAX's flag).
      expect_error: an exception class when plain JAX itself cannot do this operator (reverse
        mode through ``while_loop``, forward mode of a ``custom_vjp``): the case passes when
        jaxworld raises the same error as plain JAX.
      tangent: the tangent (``jvp``, ``hvp``) or output cotangent (``vjp``); default a fixed
        pseudo-random one.
      description: one line shown in reports.
      via: ``"operator"`` (default: ``jaxworld.grad``, ``jaxworld.hessian``, ...) or ``"wrap"``
        (``jax.jit`` of JAX's own transformation of ``jaxworld.wrap(fun)``).
      batched: the first argument carries a leading batch axis; the operator under test is
        ``jax.jit(jax.vmap(operator))`` and the references are stacked per batch element (set by
        `batchify`).
      outer_jit: call the operator inside an outer ``jax.jit`` (set by `jitify`).
      x64: run the case under ``jax.enable_x64(x64)``; None keeps the current setting (set by
        `x64ify`).

    Raises:
      TypeError: a field has the wrong type (`fun` not callable, `args` not a tuple, ...): the
        message names the field.
      ValueError: a field has a wrong value (an unknown operator, `static_argnums` out of range or
        0, a negative tolerance, ...).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, check
      >>> s = Scenario(lambda x: jnp.sum(jnp.sin(x) ** 2), (jnp.arange(3.0),), "hessian",
      ...              name="sin squared")
      >>> check([s]).ok
      True
    """

    fun: Callable
    args: tuple
    operator: str
    name: str | None = None
    reference: Any = None
    rtol: float | None = None
    atol: float | None = None
    prepare_args: tuple | None = None
    tags: tuple[str, ...] = ()
    static_argnums: tuple[int, ...] = ()
    holomorphic: bool = False
    expect_error: type[BaseException] | None = None
    tangent: Any = None
    description: str = ""
    via: str = "operator"
    batched: bool = False
    outer_jit: bool = False
    x64: bool | None = None

    def __post_init__(self):
        api = "jaxworld.testing.Scenario"
        if not callable(self.fun):
            raise TypeError(
                f"{api}: fun must be callable, got {type(self.fun).__name__} {self.fun!r:.60}. "
                "Usage: Scenario(f, (x,), 'grad').")
        if not isinstance(self.args, tuple):
            raise TypeError(
                f"{api}: args must be a tuple of arguments, got {type(self.args).__name__}. "
                "Write args=(x,) for a single argument.")
        if not self.args:
            raise ValueError(f"{api}: args is empty; the first argument is the one differentiated.")
        spec = parse_operator(self.operator, api)
        object.__setattr__(self, "operator", spec.name)
        object.__setattr__(self, "tags", _check_tags(self.tags, api))
        if isinstance(self.static_argnums, int):
            object.__setattr__(self, "static_argnums", (self.static_argnums,))
        static = tuple(self.static_argnums)
        if not all(isinstance(i, int) and 0 <= i < len(self.args) for i in static):
            raise ValueError(
                f"{api}: static_argnums {static} must be positions into args "
                f"(0..{len(self.args) - 1}).")
        if 0 in static and spec.family != "value":
            raise ValueError(
                f"{api}: argument 0 is the one differentiated by {spec.name!r}; it cannot be "
                "static. Put the static arguments after it.")
        object.__setattr__(self, "static_argnums", static)
        _check_tolerance(self.rtol, "rtol", api)
        _check_tolerance(self.atol, "atol", api)
        _check_exception_type(self.expect_error, api)
        if self.via not in VIAS:
            raise ValueError(f"{api}: via must be one of {VIAS}, got {self.via!r}.")
        if self.prepare_args is not None:
            if not isinstance(self.prepare_args, tuple) or len(self.prepare_args) != len(self.args):
                raise ValueError(
                    f"{api}: prepare_args must be a tuple like args ({len(self.args)} arguments), "
                    f"got {self.prepare_args!r:.80}.")
        n_dynamic = len(self.args) - len(static)
        if spec.family == "hvp" and n_dynamic != 1:
            raise ValueError(
                f"{api}: operator 'hvp' is jaxworld.hvp(f)(x, v), for a function of one "
                f"argument; this one has {n_dynamic} non-static arguments. Bind the others with "
                "functools.partial, or use operator 'hessian'.")
        if self.batched and 0 in static:
            raise ValueError(f"{api}: a batched scenario maps over argument 0; it cannot be "
                             "static.")
        if self.x64 is not None and not isinstance(self.x64, bool):
            raise TypeError(f"{api}: x64 must be True, False or None, got {self.x64!r:.60}.")
        if self.name is None:
            object.__setattr__(self, "name", f"{_fun_name(self.fun)}:{spec.name}")
        elif not isinstance(self.name, str) or not self.name:
            raise TypeError(f"{api}: name must be a non-empty string, got {self.name!r:.60}.")

    @property
    def spec(self) -> OperatorSpec:
        return parse_operator(self.operator)

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated again), like `dataclasses.replace`."""
        return dataclasses.replace(self, **changes)

    kind = "scenario"


@dataclasses.dataclass(frozen=True, eq=False)
class WorldScenario:
    """A world-change case: prepare an operator, change the code, `jaxworld.advance()`, evaluate.

    Runs in its own `World` (a fresh namespace, a temporary directory for helper modules, both
    removed afterwards). `setup` is Python source executed in the namespace (which already holds
    ``jax``, ``jnp``, ``np``, ``lax``, ``functools``, ``importlib`` and ``world``), or a callable
    taking the `World` (e.g. one binding a function of your package: ``world["f"] = f``); the
    operator is built on the namespace's `fun` and prepared; then `change` runs (source executed
    in the same namespace, or a callable taking the `World`), the epoch advances, and the operator
    is called again. `undo`, when given, runs after the case whatever happened (it puts back what
    a `change` of live objects changed; `mutants` uses it), followed by one more advance.

    With ``expect="new_world"`` the new answer must equal plain JAX traced fresh on the new
    definitions (and finite differences), must differ from the old answer (otherwise the case
    would prove nothing), and the operator must have re-traced. With ``expect="no_retrace"`` the
    answer must be unchanged and ``jaxworld.stats(op)["traces"]`` must not grow. With
    ``expect="follows"`` (what `mutants` use) the operator must re-trace and equal plain JAX on
    the changed code; an answer the change does not alter is allowed (and noted): a mutation may
    not be visible through every operator (scaling a linear term leaves a Hessian alone).

    Args:
      name: must contain ``"world"`` (it is how ``-k world`` selects them).
      setup, change: see above.
      operator: as for `Scenario`.
      args: the evaluation point (a tuple).
      fun: the name of the function in the namespace (default ``"f"``).
      expect: ``"new_world"``, ``"no_retrace"`` or ``"follows"``.
      modules: ``{module_name: source}`` written into the world's directory (on ``sys.path``
        while the case runs) before `setup`, so `setup` can import them; `change` can rewrite
        one with ``world.module(name, new_source)``, which reloads it.
      prepare_args, rtol, atol, tags, via, description, static_argnums, holomorphic: as for
        `Scenario`.
      undo: a zero-argument callable run after the case (see above).

    Raises:
      TypeError: a field has the wrong type (`setup` neither source nor callable, ...): the message
        names the field.
      ValueError: a field has a wrong value (a name without 'world', an unknown operator or
        `expect`, ...).
    """

    name: str
    setup: str | Callable[[Any], None]
    change: str | Callable[[Any], None]
    operator: str
    args: tuple
    fun: str = "f"
    expect: str = "new_world"
    modules: Mapping[str, str] = dataclasses.field(default_factory=dict)
    prepare_args: tuple | None = None
    rtol: float | None = None
    atol: float | None = None
    tags: tuple[str, ...] = ()
    via: str = "operator"
    description: str = ""
    static_argnums: tuple[int, ...] = ()
    holomorphic: bool = False
    undo: Callable[[], None] | None = None

    def __post_init__(self):
        api = "jaxworld.testing.WorldScenario"
        if not isinstance(self.name, str) or "world" not in self.name:
            raise ValueError(
                f"{api}: name must be a string containing 'world' (so that `-k world` selects "
                f"world-change cases), got {self.name!r:.60}.")
        if not (isinstance(self.setup, str) or callable(self.setup)):
            raise TypeError(
                f"{api}: setup must be Python source (a str) or a callable taking the World, got "
                f"{type(self.setup).__name__}.")
        if self.undo is not None and not callable(self.undo):
            raise TypeError(f"{api}: undo must be a zero-argument callable or None.")
        if not (isinstance(self.change, str) or callable(self.change)):
            raise TypeError(
                f"{api}: change must be Python source (a str) or a callable taking the World, "
                f"got {type(self.change).__name__}.")
        spec = parse_operator(self.operator, api)
        object.__setattr__(self, "operator", spec.name)
        if spec.family in ("jvp", "vjp"):
            raise ValueError(
                f"{api}: operator {spec.name!r} is not supported in world scenarios (jaxworld.jvp "
                "and jaxworld.vjp are not prepared objects); use 'grad', 'hessian', 'hvp', ...")
        if not isinstance(self.args, tuple) or not self.args:
            raise TypeError(f"{api}: args must be a non-empty tuple, got {self.args!r:.60}.")
        static = ((self.static_argnums,) if isinstance(self.static_argnums, int)
                  else tuple(self.static_argnums))
        if not all(isinstance(i, int) and 0 < i < len(self.args) for i in static):
            raise ValueError(f"{api}: static_argnums {static} must be positions 1.. into args.")
        object.__setattr__(self, "static_argnums", static)
        if self.expect not in ("new_world", "no_retrace", "follows"):
            raise ValueError(
                f"{api}: expect must be 'new_world', 'no_retrace' or 'follows', got "
                f"{self.expect!r}.")
        if not isinstance(self.modules, Mapping) or not all(
                isinstance(k, str) and k.isidentifier() and isinstance(v, str)
                for k, v in self.modules.items()):
            raise TypeError(f"{api}: modules must map module names to source strings.")
        if self.via not in VIAS:
            raise ValueError(f"{api}: via must be one of {VIAS}, got {self.via!r}.")
        if spec.family == "hvp" and len(self.args) - len(self.static_argnums) != 1:
            raise ValueError(f"{api}: operator 'hvp' needs a function of one argument.")
        _check_tolerance(self.rtol, "rtol", api)
        _check_tolerance(self.atol, "atol", api)
        object.__setattr__(self, "tags", _check_tags(self.tags, api))
        object.__setattr__(self, "modules", dict(self.modules))

    @property
    def spec(self) -> OperatorSpec:
        return parse_operator(self.operator)

    kind = "world"


def _fun_name(fun: Callable) -> str:
    name = getattr(fun, "__name__", None)
    if isinstance(name, str):
        return name
    func = getattr(fun, "func", None)  # functools.partial
    if func is not None:
        return _fun_name(func)
    return type(fun).__name__


def as_scenario_list(scenarios: Any, api: str) -> list:
    """Accept one scenario, a sequence of them, or a zero-argument callable returning them."""
    if isinstance(scenarios, (Scenario, WorldScenario)):
        return [scenarios]
    if callable(scenarios):
        scenarios = scenarios()
    if not isinstance(scenarios, Sequence) or isinstance(scenarios, str):
        try:
            scenarios = list(scenarios)
        except TypeError:
            raise TypeError(
                f"{api}: expected a list of Scenario/WorldScenario (or a zero-argument callable "
                f"returning one), got {type(scenarios).__name__}.") from None
    bad = [s for s in scenarios if not isinstance(s, (Scenario, WorldScenario))]
    if bad:
        raise TypeError(
            f"{api}: every item must be a jaxworld.testing.Scenario or WorldScenario; got "
            f"{type(bad[0]).__name__} {bad[0]!r:.60}.")
    return list(scenarios)
