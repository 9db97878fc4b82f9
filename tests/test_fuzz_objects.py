"""Differential fuzzing of object patterns against plain JAX traced fresh (issue #11, item 6).

The generator lives in `tests/fuzzing_objects.py`. The default run is bounded (`BOUNDED` cases,
the same ones on every run); the long run is

    python -m tests.fuzzing_objects --examples 10000 --seed 0 --fast-compile --log /tmp/objfuzz.log

or, through pytest, ``JAXWORLD_OBJFUZZ_EXAMPLES=10000 pytest tests/test_fuzz_objects.py -m slow``.

Today's dependency records miss code and data reached through arguments and objects (issue #11,
item 1, being rebuilt in `jaxworld/_deps`). `KNOWN_STALE` names the (pattern, change) kinds that
fail now; a case of those kinds may fail, every other case must pass. `MINIMAL_FAILURES` holds one
smallest failing case per kind as a strict xfail: when the new record catches a kind, its test
XPASSes and fails, and the kind's entries come out of both tables.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from . import fuzzing_objects as fo
from .fuzzing_objects import Case

BOUNDED = 20

# (pattern, change) kinds for which today's jaxworld gives a stale answer in at least one stack
# and preparation (found by `python -m tests.fuzzing_objects`; issue #11, item 1).
KNOWN_STALE: frozenset[tuple[str, str]] = frozenset()

# One smallest failing case per kind of `KNOWN_STALE` (the simplest stack and preparation that
# fails): each is stale today.
MINIMAL_FAILURES: dict[str, Case] = {}


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


@pytest.mark.parametrize("name", sorted(MINIMAL_FAILURES))
def test_minimal_failure(name):
    fo.run_case(MINIMAL_FAILURES[name])


def test_generator_covers_every_kind():
    """Every pattern, change, stack and preparation, and every pattern x change pair, is drawn."""
    drawn = fo.generate(1500, seed=0)
    seen = {(c.pattern, c.change) for c in drawn}
    expected = {(p, c) for p in fo.PATTERNS for c in fo.applicable_changes(p)}
    assert expected <= seen, f"never generated: {sorted(expected - seen)}"
    assert {c.stack for c in drawn} == set(fo.STACKS)
    assert {c.preparation for c in drawn} == set(fo.PREPARATIONS)
    assert {c.change for c in drawn} == set(fo.CHANGES)
    assert {c.x64 for c in drawn} == {False, True}
    assert all(c.h_old != c.h_new and c.body_old != c.body_new for c in drawn)


def test_generation_is_reproducible():
    assert fo.generate(30, seed=5) == fo.generate(30, seed=5)
    assert fo.generate(30, seed=5) != fo.generate(30, seed=6)


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
    assert float(np.max(np.abs(np.asarray(ns["before"]) - np.asarray(ns["expected"])))) > 1e-3


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
