"""The state machine of a trace, as `jaxworld/_validity.py` names it (issue #12 item 5).

current -> (advance, record holds) re-stamped; -> (advance, record changed) pending -> (next use)
re-traced, the old root retired; pending -> (policy 'frozen') frozen -> (next advance) thawed.
Derived closures share their root's state. Every answer is compared with plain JAX traced fresh.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld
from jaxworld import _caches, _epoch, _validity

X = jnp.array([0.5, -1.0, 2.0])


def world(helper: str):
    """A namespace whose `f` calls a global helper `g` (rebound by `define`), wrapped."""
    ns: dict = {"jnp": jnp}
    exec(f"def g(x):\n    return {helper}\n\ndef f(x):\n    return jnp.sum(g(x) ** 2)\n", ns)
    return ns, jaxworld.wrap(ns["f"])


def define(ns, helper: str):
    exec(f"def g(x):\n    return {helper}\n", ns)


def fresh_value(helper: str, x):
    ns: dict = {"jnp": jnp}
    exec(f"def g(x):\n    return {helper}\n", ns)
    return jax.jit(lambda v: jnp.sum(ns["g"](v) ** 2))(x)


def root_of(wrapped):
    (entry,) = wrapped._entries.values()
    return entry, entry.closure


def test_current_restamped_pending_retired():
    ns, f = world("jnp.sin(x)")
    np.testing.assert_allclose(f(X), fresh_value("jnp.sin(x)", X), rtol=1e-6)
    entry, first = root_of(f)
    assert _validity.state_of(first) == "current" and _validity.is_current(first)
    traced = first._traced_epoch

    jaxworld.advance()  # nothing changed: re-stamped, not re-traced
    assert _validity.state_of(first) == "re-stamped" and first.is_current
    assert first._traced_epoch == traced and first._valid_through == jaxworld.epoch() > traced

    define(ns, "jnp.tanh(x)")
    jaxworld.advance()  # the record changed: pending until the next use
    assert _validity.state_of(first) == "pending" and not first.is_current
    when, changes = entry.pending
    assert when == jaxworld.epoch() and any("g" in c.what for c in changes)

    np.testing.assert_allclose(f(X), fresh_value("jnp.tanh(x)", X), rtol=1e-6)
    _, second = root_of(f)
    assert second is not first and entry.pending is None
    assert _validity.state_of(second) == "current"
    assert _validity.state_of(first) == "retired"
    assert _validity.valid_at(first, traced) and not _validity.valid_at(first, jaxworld.epoch())


def test_derived_closures_share_their_roots_state():
    ns, f = world("jnp.sin(x)")
    jaxpr = jax.make_jaxpr(jax.grad(f))(X)
    closures = [e.params["closure"] for e in jaxpr.eqns if e.primitive.name == "world_call"]
    derived = [c for c in closures if c.derivation is not None]
    assert derived
    _, root = root_of(f)
    assert all(c._validity is root._validity for c in derived)
    define(ns, "jnp.cos(x)")
    jaxworld.advance()
    assert not any(c.is_current for c in derived) and not root.is_current
    np.testing.assert_allclose(jax.grad(f)(X),
                               jax.jit(jax.grad(lambda v: jnp.sum(jnp.cos(v) ** 2)))(X),
                               rtol=1e-6)


def test_frozen_until_the_next_advance():
    ns, f = world("jnp.sin(x)")
    f(X)
    entry, root = root_of(f)
    define(ns, "jnp.tanh(x)")
    jaxworld.advance()
    with jaxworld.policy("frozen"):
        np.testing.assert_allclose(f(X), fresh_value("jnp.sin(x)", X), rtol=1e-6)
    assert _validity.state_of(root) == "frozen" and root.is_current
    jaxworld.advance()  # the policy in force ('retrace') applies again
    assert _validity.state_of(root) == "pending"
    np.testing.assert_allclose(f(X), fresh_value("jnp.tanh(x)", X), rtol=1e-6)


def test_the_state_is_read_only_outside_validity():
    _, f = world("jnp.sin(x)")
    f(X)
    _, root = root_of(f)
    for name in ("_valid_through", "_traced_epoch", "_frozen"):
        with pytest.raises(AttributeError):
            setattr(root, name, 0)
    entry, _ = root_of(f)
    for name in ("pending", "validated_epoch"):
        with pytest.raises(AttributeError):
            setattr(entry, name, None)


def test_advance_survives_jax_clear_caches_racing_another_thread(monkeypatch):
    # `jax.clear_caches()` iterates JAX's cache registry without a lock: a cache created by
    # another thread meanwhile makes it raise (found by the stress run of test_concurrency.py,
    # out of `advance()`). Releasing is about memory only: `advance()` must still succeed.


    real = jax.clear_caches
    failures = {"left": 1}

    def racing():
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("dictionary changed size during iteration")
        real()

    monkeypatch.setattr(jax, "clear_caches", racing)
    # Caches are released only after the global fallback (issue #13): force it.
    monkeypatch.setattr(_caches, "staging_in_flight", lambda funs: "forced by the test")
    ns, f = world("jnp.sin(x)")
    f(X)
    monkeypatch.setattr(_epoch, "_dead_generations", _epoch.RELEASE_EVERY - 1)
    define(ns, "jnp.tanh(x)")
    before = jaxworld.epoch()
    assert jaxworld.advance() == before + 1  # a relevant advance that releases: no exception
    assert failures["left"] == 0 and _epoch._dead_generations == 0  # retried, then released
    np.testing.assert_allclose(f(X), fresh_value("jnp.tanh(x)", X), rtol=1e-6)

    # A registry that keeps changing: the release is left for the next relevant advance.
    monkeypatch.setattr(jax, "clear_caches", lambda: (_ for _ in ()).throw(
        RuntimeError("dictionary changed size during iteration")))
    assert _epoch.release_caches() is False
    monkeypatch.setattr(jax, "clear_caches", lambda: (_ for _ in ()).throw(
        RuntimeError("something else")))
    with pytest.raises(RuntimeError, match="something else"):
        _epoch.release_caches()


def test_caches_are_not_released_inside_a_jax_trace(monkeypatch):
    # An advance made inside a JAX trace (a wrapped function's first trace inside `jax.jit`
    # syncs first) must not run `jax.clear_caches()`: it would empty the C++ cache of the jitted
    # function being traced while it runs. The release waits for a relevant advance outside.
    cleared = []
    monkeypatch.setattr(jax, "clear_caches", lambda: cleared.append(True))
    monkeypatch.setattr(_epoch, "_dead_generations", _epoch.RELEASE_EVERY)
    inside = []
    jax.make_jaxpr(lambda x: inside.append(_epoch.release_caches()) or x)(1.0)
    assert inside == [False] and cleared == [] and _epoch._dead_generations > 0
    assert _epoch.release_caches() is True and cleared == [True]
    assert _epoch._dead_generations == 0
