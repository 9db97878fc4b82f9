"""Thread safety of advance and re-trace under concurrent calls.

Reader threads call prepared operators (a `jaxworld.hessian` and a plain
`jax.jit(jax.hessian(wrap(f)))`) in a loop while a writer thread redefines the helper they depend
on and advances the world, several times. Every answer must be one world's Hessian — never a mix
of two worlds' pieces — with no exception and no deadlock (every thread joins within a timeout),
and after the last advance every call gives the last world.
"""

from __future__ import annotations

import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxworld

from .helpers import notebook, tolerance

X = jnp.array([0.4, -0.8, 1.3])
N_WORLDS = 6
N_READERS = 3
JOIN_TIMEOUT_S = 120


def world_helper(k: int):
    """The helper of world k: each world's Hessian differs from every other's and their mixes."""
    def g(x):
        return jnp.sin((k + 1.0) * x) + 0.25 * k * x ** 3
    return g


def test_concurrent_calls_see_whole_worlds_only():
    ns = notebook("""
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    ns["g"] = world_helper(0)
    expected = []
    for k in range(N_WORLDS):
        ns["g"] = world_helper(k)
        expected.append(np.asarray(jax.jit(jax.hessian(lambda x: ns["f"](x)))(X)))
    ns["g"] = world_helper(0)
    rtol, atol = tolerance(np.float32)
    for i in range(N_WORLDS):
        for j in range(i):
            assert not np.allclose(expected[i], expected[j], rtol=rtol, atol=atol)

    wrapped = jaxworld.wrap(ns["f"])
    operators = {"jaxworld.hessian": jaxworld.hessian(ns["f"]),
                 "jax.jit(jax.hessian(wrap(f)))": jax.jit(jax.hessian(wrapped))}
    for op in operators.values():
        np.testing.assert_allclose(op(X), expected[0], rtol=rtol, atol=atol)

    done = threading.Event()
    errors: list[BaseException] = []
    answers: list[tuple[str, np.ndarray]] = []
    answers_lock = threading.Lock()

    def reader(name: str):
        op = operators[name]
        try:
            while not done.is_set():
                out = np.asarray(op(X))
                with answers_lock:
                    answers.append((name, out))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    def writer():
        try:
            for k in range(1, N_WORLDS):
                time.sleep(0.05)
                ns["g"] = world_helper(k)
                jaxworld.advance()
            time.sleep(0.05)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    names = list(operators)
    threads = [threading.Thread(target=reader, args=(names[i % len(names)],), daemon=True)
               for i in range(N_READERS)]
    threads.append(threading.Thread(target=writer, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    assert not errors, errors

    assert answers
    seen_worlds = set()
    for name, out in answers:
        matches = [k for k in range(N_WORLDS)
                   if np.allclose(out, expected[k], rtol=rtol, atol=atol)]
        assert matches, f"{name} returned a Hessian of no world (a mix?):\n{out}"
        seen_worlds.update(matches)
    assert len(seen_worlds) >= 2  # the readers really ran across world changes

    for name, op in operators.items():  # after the last advance: the last world
        np.testing.assert_allclose(op(X), expected[-1], rtol=rtol, atol=atol, err_msg=name)
