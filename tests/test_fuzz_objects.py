"""Differential fuzzing of object patterns against plain JAX traced fresh (issue #11, item 6).

The generator lives in `tests/fuzzing_objects.py`. The default run is bounded (`BOUNDED` cases,
the same ones on every run); the long run is

    python -m tests.fuzzing_objects --examples 10000 --seed 0 --fast-compile --log /tmp/objfuzz.log

or, through pytest, ``JAXWORLD_OBJFUZZ_EXAMPLES=10000 pytest tests/test_fuzz_objects.py -m slow``.

Before issue #11, dependency records missed code and data reached through arguments and objects:
48 of the 71 (pattern, change) kinds were stale (`WERE_STALE`). `MINIMAL_FAILURES` keeps one
smallest case per such kind as a regression test. `KNOWN_STALE`, the kinds allowed to fail, is
empty: every case must pass.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from . import fuzzing_objects as fo
from .fuzzing_objects import Case

BOUNDED = 20

# (pattern, change) kinds for which jaxworld gave a stale answer before issue #11's records
# (jaxworld d91d743; all of them pass since 753505f: each is now a regression case below).
# Found on jaxworld d91d743 by trying each kind in nine stacks x preparations, simplest first:
# every kind here already fails in the simplest one, `wrap(f)(x)` called eagerly after the
# change and `jaxworld.advance()`. The other kinds passed in all nine. (The nine ran with float64
# inputs, with which every "x64" kind passes: the input's dtype follows the flag, a new input
# signature. With a float32 input, every "x64" kind above is stale: `Case.x32_input`.)
_WERE_STALE = {
    "user_class": "x64",
    "dataclass": "x64",
    "namedtuple_argument": "helper float method numpy",
    "namedtuple_static": "helper float method numpy x64",
    "pytree_node_class": "helper float method numpy x64",
    "pytree_dataclass": "helper float method numpy x64",
    "eqx_module": "helper float method numpy x64",
    "eqx_lambda": "helper float numpy x64",
    "namespace_config": "field x64",
    "functools_partial": "x64",
    "tree_partial": "helper float numpy",
    "static_function": "helper float numpy x64",
    "static_object": "helper float field method numpy x64",
    "config_context": "x64 prng",
}
WERE_STALE: frozenset[tuple[str, str]] = frozenset(
    (pattern, change) for pattern, changes in _WERE_STALE.items() for change in changes.split())
# The kinds that may fail today: none.
KNOWN_STALE: frozenset[tuple[str, str]] = frozenset()

# One smallest case per kind of `WERE_STALE` (stale before issue #11): the value of the wrapped
# function, called eagerly. Each must pass now.
MINIMAL_FAILURES: dict[str, Case] = {
    f"{pattern}-{change}": Case(pattern=pattern, change=change, stack="value",
                                preparation="eager", x32_input=change == "x64")
    for pattern, change in sorted(WERE_STALE)}
# In the default run, one per pattern (the first change of `CHANGES` it is stale for); all of
# them with `-m slow`.
_DEFAULT_MINIMAL = {min((k for k in MINIMAL_FAILURES if k.startswith(p + "-")),
                        key=lambda k: fo.CHANGES.index(k.split("-")[1]))
                    for p in {p for p, _ in WERE_STALE}}


def _check_outcomes(outcomes: list[fo.Outcome]) -> None:
    unexpected = [o for o in outcomes if not o.passed
                  and (isinstance(o.error, fo.UnchangedAnswer)
                       or (o.case.pattern, o.case.change) not in KNOWN_STALE)]
    assert not unexpected, "failing cases outside KNOWN_STALE:\n" + "\n\n".join(
        f"{o.case!r}\n{o.error}" for o in unexpected)


def test_object_fuzz_against_plain_jax():
    """A bounded, derandomized run: the same `BOUNDED` cases every time."""
    outcomes = fo.fuzz(BOUNDED, seed=11, chunk=BOUNDED, on_outcome=lambda o: None)
    assert len(outcomes) == BOUNDED
    _check_outcomes(outcomes)


@pytest.mark.slow
def test_object_fuzz_long_run():
    examples = int(os.environ.get("JAXWORLD_OBJFUZZ_EXAMPLES", "300"))
    outcomes = fo.fuzz(examples, seed=1000, chunk=100, on_outcome=lambda o: None)
    assert len(outcomes) == examples
    _check_outcomes(outcomes)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=[] if name in _DEFAULT_MINIMAL else [pytest.mark.slow])
    for name in sorted(MINIMAL_FAILURES)])
def test_minimal_failure(name):
    # Stale before issue #11 (`WERE_STALE`); the record now follows each of these changes.
    fo.run_case(MINIMAL_FAILURES[name])


def test_generator_covers_every_kind():
    """Every pattern, change, stack and preparation, and every pattern x change pair, is drawn."""
    pairs = [(p, c) for p in fo.PATTERNS for c in fo.applicable_changes(p)]
    drawn = fo.generate(2 * len(pairs), seed=0)
    seen = {(c.pattern, c.change) for c in drawn}
    expected = set(pairs)
    assert expected <= seen, f"never generated: {sorted(expected - seen)}"
    assert {c.stack for c in drawn} == set(fo.STACKS)
    assert {c.preparation for c in drawn} == set(fo.PREPARATIONS)
    assert {c.change for c in drawn} == set(fo.CHANGES)
    assert {c.x64 for c in drawn} == {False, True}
    assert {c.x32_input for c in drawn} == {False, True}
    assert all(fo._apart(c.h_new, c.h_old) and c.body_old != c.body_new for c in drawn)


def test_generation_is_reproducible():
    assert fo.generate(30, seed=5) == fo.generate(30, seed=5)
    assert fo.generate(30, seed=5) != fo.generate(30, seed=6)


@pytest.mark.slow
def test_every_change_changes_plain_jax():
    """Each change kind moves plain JAX's answer: a stale jaxworld cannot pass unnoticed."""
    for pattern in fo.PATTERNS:
        for change in fo.applicable_changes(pattern):
            case = Case(pattern=pattern, change=change, stack="grad", preparation="jit")
            old, new = fo.oracles(case, fo.inputs(case))
            assert fo.changed(old, new), (case, old, new)


@pytest.mark.parametrize("case", [
    Case(pattern="user_class", change="method", stack="hessian", preparation="jit"),
    Case(pattern="static_object", change="field", stack="value", preparation="eager"),
    Case(pattern="eqx_module", change="helper", stack="vmap_grad", preparation="operator"),
    Case(pattern="config_context", change="x64", stack="value", preparation="jit",
         x32_input=True),
], ids=lambda c: f"{c.pattern}-{c.change}")
def test_program_gives_the_case_verdict(case):
    """`Case.program()` is the case as a standalone program: it fails exactly when the case does."""
    program = case.program().replace("import equinox as eqx", "eqx = __eqx__")
    ns = {"__eqx__": fo.load_equinox()}
    try:
        exec(compile(program, "<objfuzz-program>", "exec"), ns)
        program_passed = True
    except AssertionError:
        program_passed = False
    assert program_passed == fo.run_outcome(case).passed
    assert fo.changed(ns["before"], ns["expected"])  # the program's change matters


def test_fallback_equinox_behaves_like_a_module():
    eqx = fo.load_equinox(fallback=True)
    assert eqx.fallback

    class Model(eqx.Module):
        w: np.ndarray
        scale: float = eqx.field(static=True)

    m = Model(np.ones(2, np.float32), 0.5)
    leaves, treedef = jax.tree_util.tree_flatten(m)
    assert len(leaves) == 1 and leaves[0] is m.w
    assert jax.tree_util.tree_flatten(Model(np.ones(2, np.float32), 2.0))[1] != treedef
    with pytest.raises(AttributeError):
        m.scale = 1.0  # frozen, like equinox.Module
    assert eqx.nn.Lambda(lambda v: 2 * v)(3.0) == 6.0


def test_fallback_equinox_case_matches_real_equinox():
    case = Case(pattern="eqx_module", change="method", stack="grad", preparation="jit")
    real = fo.run_outcome(case).passed
    fo._state["fallback_equinox"] = True
    try:
        fallback = fo.run_outcome(case).passed
    finally:
        fo._state["fallback_equinox"] = False
    assert real == fallback
