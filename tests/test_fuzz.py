"""Differential fuzzing against plain JAX traced fresh (issue #7, item 1).

The generators live in `tests/fuzzing.py`. The default run is bounded (`max_examples` below,
well under a minute); the long run is

    python -m tests.fuzzing --examples 10000 > /tmp/jaxworld-fuzz.log

or, through pytest, ``JAXWORLD_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz.py -m slow``.
Every failure the fuzzer found is pinned below as an explicit regression case.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import jaxworld

from . import fuzzing
from .fuzzing import Case

_SETTINGS = dict(deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=15, **_SETTINGS)
@given(fuzzing.cases())
def test_fuzz_against_plain_jax(case):
    fuzzing.run_case(case)


@pytest.mark.slow
def test_fuzz_long_run():
    examples = int(os.environ.get("JAXWORLD_FUZZ_EXAMPLES", "2000"))

    @settings(max_examples=examples, **_SETTINGS)
    @given(fuzzing.cases())
    def check(case):
        fuzzing.run_case(case)

    check()


# -- regression cases: each one a failure the fuzzer found (or a hand-picked corner) -------------

REGRESSIONS = {
    # Found by the long run: the *oracle* was wrong. Plain JAX under one `jax.jit` returned
    # [0.047, 1.836] (and [0.048, inf] for the second case) where plain JAX run eagerly, float64
    # and the analytic gradient give [0.047, 3.023] ([0.048, 3.286]): XLA's fusion breaks the
    # exact-equality test of `jnp.max`'s gradient rule. jaxworld gave the right answer. The
    # fuzzer now settles a disagreement with the jitted oracle against plain JAX run eagerly.
    "max_gradient_jitted_oracle_drops_the_max_term": Case(
        f_body="jnp.sum((h((x * x)) + (x * x)))", h_old="(v * (v * jnp.max((v + C))))",
        h_new="v", wrap_helper=False, c_old=-0.8, c_new=1.5, n=2, x64=False, stack=(),
        operator="vjp", changes=(), advance=False, seed=1),
    "max_gradient_jitted_oracle_divides_by_zero_count": Case(
        f_body="jnp.sum((h((x * x)) + (x * x)))", h_old="(v * jnp.max((v + C)))",
        h_new="v", wrap_helper=False, c_old=-0.8, c_new=1.5, n=2, x64=False, stack=(),
        operator="vjp", changes=(), advance=False, seed=1),
    # Failing chunks of the long run with `--fast-compile` (XLA's optimizations off): both sides
    # returned non-finite gradients through `jnp.max` ([nan, nan] vs plain JAX's [nan, inf]) —
    # plain JAX's own `jax.jit(jax.grad(f))` is wrong there. With the default optimizations,
    # jaxworld and plain JAX agree (finite). Kept as cases of `jnp.max` gradients under
    # `lax.scan`, `jacrev` and the `vjp` pullback.
    "max_gradient_in_scan_jacrev_fast_compile_artefact": Case(
        f_body="jnp.sum(lax.scan(lambda v0, _: (jnp.sin(h((v0 * C))), None), "
               "((x - (x * C)) + (M @ x)), None, length=1)[0])",
        h_old="(v + jnp.max((-0.75 * v)))", h_new="v", wrap_helper=True, c_old=1.25,
        c_new=-0.3, n=3, x64=True, stack=("jacrev",), operator="jvp", mode="rev_over_rev",
        changes=("array", "helper"), advance=False, seed=2929),
    "max_gradient_vjp_pullback_fast_compile_artefact": Case(
        f_body="jnp.sum((h((x * C)) + (x * C)))",
        h_old="(v * jnp.max(((v + C) * jnp.sum(v))))", h_new="v", wrap_helper=False,
        c_old=-0.8, c_new=1.5, n=2, x64=False, stack=(), operator="vjp", changes=(),
        advance=False, seed=24),
    # Found by the fuzzer: JAX keeps a NumPy global as a *view* in the traced jaxpr's constants,
    # so mutating it in place (without `advance()`) leaked into the old world's closure the next
    # time it was lowered: `wf(x)` compiled after the change gave the new world's answer. Fixed
    # by snapshotting NumPy constants when jaxworld traces (`_wrap.py`).
    "numpy_global_mutated_in_place_without_advance": Case(
        f_body="jnp.sum((M @ x))", h_old="v", h_new="v", wrap_helper=False, c_old=0.5,
        c_new=1.5, n=2, x64=False, stack=("jit",), operator="grad", changes=("array",),
        advance=False),
    "numpy_global_mutated_in_place_with_advance": Case(
        f_body="jnp.sum((M @ x))", h_old="v", h_new="v", wrap_helper=False, c_old=0.5,
        c_new=1.5, n=2, x64=True, stack=("hessian",), operator="hvp", changes=("array",),
        advance=True),
    # Hand-picked: every world change at once, under a depth-3 stack, with a wrapped helper
    # that itself reads the constant and the matrix, inside scan and cond.
    "wrapped_helper_scan_cond_depth3": Case(
        f_body="jnp.sum(lax.scan(lambda v1, _: (h(v1) * C, None), "
               "lax.cond(jnp.sum(x) > 0, lambda v2: jnp.sin(v2), lambda v2: (M @ v2), x), "
               "None, length=2)[0])",
        h_old="jnp.tanh((v * C))", h_new="(M @ jnp.cos(v))", wrap_helper=True, c_old=0.5,
        c_new=-0.3, n=2, x64=True, stack=("jacfwd", "grad"), operator="hessian",
        mode="rev_over_fwd", changes=("array", "const", "helper"), advance=True),
    "pullback_made_before_helper_redefinition": Case(
        f_body="jnp.sum((h(x) * jnp.sum(x)))", h_old="jnp.sin(v)", h_new="(v * v)",
        wrap_helper=False, c_old=1.25, c_new=0.9, n=3, x64=True, stack=("checkpoint", "vjp"),
        operator="vjp", changes=("helper",), advance=True),
    "no_advance_keeps_old_world_under_hessian_of_jit": Case(
        f_body="jnp.mean(jnp.sin(jnp.where(x > 0, h(x), (x * C))))", h_old="jnp.exp(-v * v)",
        h_new="jnp.log1p(v * v)", wrap_helper=True, c_old=-0.8, c_new=1.5, n=2, x64=False,
        stack=("hessian", "jit"), operator="jit_raw", outer="jit",
        changes=("const", "helper"), advance=False),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzz_regression(name):
    fuzzing.run_case(REGRESSIONS[name])


def test_numpy_constant_is_snapshotted_at_trace_time():
    """The fuzz finding in its smallest form: an in-place mutation is seen only after advance."""
    M = np.ones((2, 2), np.float32)
    ns = {"jnp": jnp, "M": M}
    exec("def f(x):\n    return jnp.sum(M @ x)\n", ns)
    wf = jaxworld.wrap(ns["f"])
    x = jnp.ones(2, jnp.float32)
    assert float(jax.jit(wf)(x)) == 4.0
    M[...] = 2.0
    # A fresh outer jit lowers the stored closure again: it must still be the old world.
    assert float(jax.jit(lambda x: wf(x))(x)) == 4.0
    assert float(jax.grad(wf)(x)[0]) == 2.0
    jaxworld.advance()
    assert float(jax.jit(lambda x: wf(x))(x)) == 8.0
    assert float(jax.grad(wf)(x)[0]) == 4.0


def test_generator_covers_the_grammar():
    """The grammar's constructs all occur (a fuzzer that never makes a scan tests no scans)."""
    seen = set()

    # Derandomized: the same 300 cases on every run (a random draw once missed `lax.cond`, which
    # the grammar only offers at depth >= 2, and failed CI: a coverage check must not be flaky).
    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(fuzzing.cases())
    def collect(case):
        bodies = (case.f_body, case.h_old, case.h_new)
        for token in ("lax.scan", "lax.cond", "jnp.where", "M @", "jnp.max", "C"):
            if any(token in body for body in bodies):
                seen.add(token)
        if re.search(r"(?<![\w.])h\(", case.f_body):  # a call of the helper (not `jnp.tanh(`)
            seen.add("h(")
        seen.update(case.stack)
        seen.add(("operator", case.operator))
        seen.update(("change", c) for c in case.changes)

    collect()
    expected = {"lax.scan", "lax.cond", "jnp.where", "M @", "h(", "C", *fuzzing.TRANSFORMS,
                *(("operator", o) for o in fuzzing.OPERATORS),
                *(("change", c) for c in fuzzing.CHANGES)}
    assert expected <= seen, f"never generated: {sorted(map(str, expected - seen))}"
