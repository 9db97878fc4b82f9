"""The pytest plugin (entry point `jaxworld`): the `world` fixture and `parametrize`, tested
through `pytester` the way a downstream project would use them."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_plugin_is_registered_through_the_entry_point(pytester):
    pytester.makepyfile("""
        def test_registered(pytestconfig):
            plugin = pytestconfig.pluginmanager.get_plugin("jaxworld")
            assert plugin is not None
            assert plugin.__name__ == "jaxworld.testing._pytest_plugin"
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_world_fixture_redefine_and_advance(pytester):
    pytester.makepyfile("""
        import jax
        import jax.numpy as jnp
        import numpy as np
        import jaxworld

        def test_hessian_follows_the_new_helper(world):
            world.define('''
                def g(x):
                    return jnp.sin(x)
                def f(x):
                    return jnp.sum(g(x) ** 2)
            ''')
            x = jnp.linspace(0.1, 1.0, 3)
            H = jaxworld.hessian(world["f"])
            old = H(x)
            world.define('''
                def g(x):
                    return jnp.cos(x) * 3.0
            ''')
            world.advance()
            new = H(x)
            expected = jax.hessian(world.fresh("f"))(x)  # plain JAX on the new definitions
            np.testing.assert_allclose(new, expected, rtol=1e-5, atol=1e-6)
            assert not np.allclose(new, old)

        def test_modules_are_reloaded_and_removed(world):
            import sys
            world.module("pytester_helper_mod", "def g(x):\\n    return x * 2.0\\n")
            world.define('''
                import pytester_helper_mod as helpers
                def f(x):
                    return helpers.g(x) ** 2
            ''')
            df = jaxworld.grad(world["f"])
            assert float(df(1.0)) == 8.0
            world.module("pytester_helper_mod", "def g(x):\\n    return x * 3.0\\n")
            world.advance()
            assert float(df(1.0)) == 18.0
            assert "pytester_helper_mod" in sys.modules

        def test_the_previous_world_left_nothing(world):
            import sys
            assert "pytester_helper_mod" not in sys.modules
            assert "f" not in world and "g" not in world
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_parametrize_turns_scenarios_into_tests(pytester):
    pytester.makepyfile("""
        import jax
        import jax.numpy as jnp
        from jaxworld.testing import Scenario, WorldScenario, assert_passes, parametrize

        @jax.custom_jvp
        def bad_sin(x):
            return jnp.sin(x)
        bad_sin.defjvp(lambda p, t: (bad_sin(p[0]), 2.0 * jnp.cos(p[0]) * t[0]))

        def loss(x):
            return jnp.sum(jnp.tanh(x) ** 2)

        X = jnp.linspace(0.1, 1.0, 4)
        SCENARIOS = [
            Scenario(loss, (X,), "hessian", name="loss hessian"),
            Scenario(loss, (X,), "hvp", name="loss hvp"),
            Scenario(lambda x: jnp.sum(bad_sin(x)), (X,), "grad", name="bad rule grad"),
            WorldScenario("world: scale rebound",
                          "S = 1.0\\ndef f(x):\\n    return jnp.sum(jnp.sin(S * x) ** 2)\\n",
                          "S = 2.0", "hessian", (X,)),
        ]

        @parametrize(SCENARIOS)
        def test_nested_ad(scenario):
            assert_passes(scenario)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([  # in run order
        "*test_nested_ad?loss hessian? PASSED*",
        "*test_nested_ad?loss hvp? PASSED*",
        "*test_nested_ad?bad rule grad? FAILED*",
        "*test_nested_ad?world: scale rebound? PASSED*",
    ])
    result.stdout.fnmatch_lines(["*bad rule grad [[]grad[]] fail: finite differences (float64): "
                                 "max abs error*"])


def test_parametrize_rejects_duplicate_names():
    import jax.numpy as jnp

    from jaxworld.testing import Scenario, parametrize

    s = Scenario(lambda x: jnp.sum(x), (jnp.ones(2),), "grad", name="same")
    with pytest.raises(ValueError, match="scenario names must be unique"):
        parametrize([s, s])


def test_parametrize_a_matrix_with_modifiers_and_stability(pytester):
    # What a downstream test file writes with issue #15's helpers: one line per function, the
    # modifiers, and assert_passes, which also fails on a stability check (here: a re-tracing
    # operator whose values are right).
    pytester.makepyfile("""
        import itertools
        import jax
        import jax.numpy as jnp
        from jaxworld.testing import (Scenario, assert_passes, batchify, jitify, parametrize,
                                      scenarios_for)

        def loss(w, x):
            return jnp.mean(jnp.tanh(x @ w) ** 2)

        W, XS = jnp.full((3,), 0.2), jnp.ones((4, 3))
        MATRIX = scenarios_for(loss, W, XS, operators=["grad", "hessian", "hvp"],
                               modes=["fwd_over_rev", "rev_over_rev"], vias=["operator"])
        MODIFIED = [jitify(MATRIX[0]), batchify(MATRIX[0], size=2)]

        _CONTEXT = jax.make_user_context(0)
        _BUMPS = itertools.count(1)

        def retraced(x):
            jax.debug.callback(lambda: _CONTEXT.set_global(next(_BUMPS)))
            return jnp.sum(x ** 2)

        @parametrize([*MATRIX, *MODIFIED,
                      Scenario(retraced, (W,), "value", name="re-traced operator")])
        def test_case(scenario):
            assert_passes(scenario)

        def test_hvp_was_skipped_with_its_reason():
            assert [(s.operator, s.reason) for s in MATRIX.skipped] == [
                ("hvp", "'hvp' is for functions of one argument (2 non-static)")]
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines([
        "*test_case?loss: grad? PASSED*",
        "*test_case?loss: hessian:fwd_over_rev? PASSED*",
        "*test_case?loss: hessian:rev_over_rev? PASSED*",
        "*test_case?loss: grad [[]jitify[]]? PASSED*",
        "*test_case?loss: grad [[]batchify[]]? PASSED*",
        "*test_case?re-traced operator? FAILED*",
    ])
    result.stdout.fnmatch_lines(["*re-traced operator [[]value[]] fail: steady-state calls of the "
                                 "prepared operator (same signature) re-traced or re-compiled*"])
