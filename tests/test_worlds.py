"""One computation, one world (issue #12): deterministic interleavings.

Each test forces one interleaving with events (a plain hook, a helper's trace, or a record check
that blocks) and checks every answer against plain JAX traced fresh in the world it must belong
to. Each of them failed on main before issue #12 (the comment says how) and passes now.
"""

from __future__ import annotations

import re
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = jnp.array([0.4, -0.8, 1.3])
TIMEOUT_S = 120


def _run(target, *args):
    """Run `target(*args)` in a thread; returns (thread, results, errors)."""
    results: list = []
    errors: list[BaseException] = []

    def body():
        try:
            results.append(target(*args))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, results, errors


def _join(*runs) -> None:
    for thread, _, _ in runs:
        thread.join(TIMEOUT_S)
        assert not thread.is_alive(), "deadlock: a thread did not finish"
    errors = [e for _, _, errs in runs for e in errs]
    assert not errors, errors


def _blocked(thread: threading.Thread) -> None:
    """`thread` is still running after a while (it waits for something the test holds)."""
    time.sleep(0.3)
    assert thread.is_alive(), "expected the thread to wait"


class _BlockingRecord:
    """A dependency record whose checks block (or raise) — a slow record, like a 100M-element
    NumPy global, made deterministic. Everything else is the real record's."""

    def __init__(self, record, *, started=None, release=None, raises=None):
        self._record, self._started, self._release, self._raises = record, started, release, raises

    def changes(self, **kwargs):
        if self._raises is not None:
            error, self._raises = self._raises, None  # once
            raise error
        if self._started is not None and not self._started.is_set():
            self._started.set()
            assert self._release.wait(TIMEOUT_S), "the test never released the check"
        return self._record.changes(**kwargs)

    def __getattr__(self, name):
        return getattr(self._record, name)


def _entry(wrapped):
    (entry,) = wrapped._entries.values()
    return entry


def _plain(ns, name):
    """Plain JAX in the namespace's current state, eagerly: a plain `jax.jit` helper of the
    namespace keeps its own (stale) trace under plain JAX, and `disable_jit` runs its Python."""
    with jax.disable_jit():
        return np.asarray(ns[name](X))


def test_a_call_inside_the_advance_window_is_not_stale_for_good():
    # main: advance() published the epoch before checking the records. A call in that window
    # re-traced f under the old `jax.jit` generation, so the `jax.jit` helper it calls handed back
    # its old jaxpr, and the result was stamped current with a fresh record: `J(X)` stayed at
    # C = 1 after every later advance.
    ns = notebook("""
        C = 1.0
        hj = jax.jit(lambda x: C * x)
        def slow(x):
            return x + 1.0
        def f(x):
            return jnp.sum(hj(x) ** 2)
    """)
    ws = jaxworld.wrap(ns["slow"])
    ws(X)  # the older entry: advance() checks it first
    wf = jaxworld.wrap(ns["f"])
    J = jax.jit(wf)
    old = _plain(ns, "f")
    assert_trees_close(np.asarray(J(X)), old)
    started, release = threading.Event(), threading.Event()
    _entry(ws).record = _BlockingRecord(_entry(ws).record, started=started, release=release)
    ns["C"] = 2.0
    writer = _run(jaxworld.advance)
    assert started.wait(TIMEOUT_S)  # the advance is inside its (slow) record check
    # A call now runs wholly in the old world: the advance has not returned.
    assert_trees_close(np.asarray(wf(X)), old)
    release.set()
    _join(writer)
    new = _plain(ns, "f")
    assert not np.allclose(new, old)
    assert_trees_close(np.asarray(J(X)), new)
    assert_trees_close(np.asarray(wf(X)), new)
    jaxworld.advance()
    assert_trees_close(np.asarray(J(X)), new)


def _two_helpers():
    ns = notebook("""
        def hook():
            pass
        def g1(x):
            return jnp.sin(x)
        def g2(x):
            return x ** 2
        def f1(x):
            return g1(x)
        def f2(x):
            return g2(x)
    """)
    w1, w2 = jaxworld.wrap(ns["f1"]), jaxworld.wrap(ns["f2"])

    def outer(x):
        a = w1(x)
        ns["hook"]()
        return jnp.sum(a * w2(x))

    def plain(x):
        return jnp.sum(ns["f1"](x) * ns["f2"](x))

    return ns, w1, w2, outer, plain


def _redefine_both(ns):
    notebook("""
        def g1(x):
            return jnp.cos(x)
        def g2(x):
            return x ** 3
    """, ns)


def test_two_wrapped_calls_in_one_jit_with_an_advance_between():
    # main: the second wrapped call resolved its closure in the new world, the first had used the
    # old one: `cos`-world f2 times `sin`-world f1, the answer of no world.
    ns, w1, w2, outer, plain = _two_helpers()
    w1(X), w2(X)  # both traced in the old world
    old = np.asarray(jax.jit(plain)(X))
    started, release = threading.Event(), threading.Event()

    def hook():
        started.set()
        assert release.wait(TIMEOUT_S)

    ns["hook"] = hook
    J = jax.jit(outer)
    reader = _run(J, X)
    assert started.wait(TIMEOUT_S)  # the trace used w1 and waits before calling w2
    ns["hook"] = lambda: None
    _redefine_both(ns)
    jaxworld.advance()  # another thread: the trace in flight is plain JAX, nothing to wait for
    release.set()
    _join(reader)
    new = np.asarray(jax.jit(lambda x: plain(x))(X))
    mixed = np.sum(np.sin(np.asarray(X)) * np.asarray(X) ** 3)
    assert not np.isclose(mixed, new) and not np.isclose(mixed, old)
    assert_trees_close(np.asarray(reader[1][0]), old)  # the world the computation started in
    assert_trees_close(np.asarray(J(X)), new)  # and the next call: the new one


def test_a_world_that_cannot_be_served_raises_and_calling_again_works():
    # As above, but w2 was never traced in the old world: no trace of it exists for the world the
    # computation started in. main returned the mixed answer; now WorldChangeError, whose advice
    # (run the computation again) gives the new world.
    ns, w1, w2, outer, plain = _two_helpers()
    w1(X)
    started, release = threading.Event(), threading.Event()

    def hook():
        started.set()
        assert release.wait(TIMEOUT_S)

    ns["hook"] = hook
    J = jax.jit(outer)
    reader = _run(J, X)
    assert started.wait(TIMEOUT_S)
    ns["hook"] = lambda: None
    _redefine_both(ns)
    jaxworld.advance()
    release.set()
    reader[0].join(TIMEOUT_S)
    assert not reader[0].is_alive()
    (error,) = reader[2]
    assert isinstance(error, jaxworld.WorldChangeError), error
    message = str(error)
    assert re.search(r"f2 was called inside a computation that runs in the world of epoch \d+, "
                     r"but the world advanced to epoch \d+", message), message
    assert "not valid in the new world: f1" in message and "Run the computation again" in message
    assert_trees_close(np.asarray(J(X)), np.asarray(jax.jit(lambda x: plain(x))(X)))


def _global_and_helper():
    ns = notebook("""
        C = 1.0
        def g(x):
            return jnp.sin(x)
        def f(x):
            return g(x)
        def slow(x):
            return x + 1.0
    """)
    ws = jaxworld.wrap(ns["slow"])
    ws(X)  # older than wf's entry: advance() checks it first
    wf = jaxworld.wrap(ns["f"])
    wf(X)

    def outer(x):
        return jnp.sum(ns["C"] * wf(x))

    def plain(x):
        return jnp.sum(ns["C"] * ns["f"](x))

    return ns, ws, outer, plain


def _cell(ns):
    """A cell: rebind C and g together (one dict update)."""
    scratch = notebook("C = 3.0\ndef g(x):\n    return jnp.cos(x)\n", {"jnp": jnp})
    g = type(scratch["g"])(scratch["g"].__code__, ns)  # reads the notebook's globals
    ns.update({"C": scratch["C"], "g": g})


def test_a_wrapped_outer_function_reading_a_global_plus_a_wrapped_call():
    # A cell rebinds the global C that `outer` reads directly and the helper g of the wrapped
    # function it calls, without an advance, and then `outer` is traced fresh. main: the trace
    # read the new C and used wf's old closure (the answer of no world). Wrapped (as the README
    # advises for outer functions), the new trace checks the live records first and advances.
    ns, _, outer, plain = _global_and_helper()
    _cell(ns)
    got = np.asarray(jax.jit(jaxworld.wrap(outer))(X))
    new = np.asarray(jax.jit(lambda x: plain(x))(X))
    mixed = np.sum(3.0 * np.sin(np.asarray(X)))
    assert not np.isclose(mixed, new)
    assert_trees_close(got, new)


def test_an_outer_function_traced_during_an_advance_starts_in_the_new_world():
    # The cell has rebound C and g and its advance is under way (inside a slow record check) when
    # a plain `jax.jit(outer)` is traced. The advance publishes the new world only at its end, so
    # a computation starting meanwhile must wait for it rather than start in the old world with
    # the new C. (main passed this interleaving: it published the epoch first; the atomic advance
    # must not open a window here.)
    ns, ws, outer, plain = _global_and_helper()
    started, release = threading.Event(), threading.Event()
    _entry(ws).record = _BlockingRecord(_entry(ws).record, started=started, release=release)

    def cell():
        _cell(ns)
        return jaxworld.advance()

    writer = _run(cell)
    assert started.wait(TIMEOUT_S)
    reader = _run(jax.jit(outer), X)
    _blocked(reader[0])  # its first wrapped call waits for the advance
    release.set()
    _join(writer, reader)
    assert_trees_close(np.asarray(reader[1][0]), np.asarray(jax.jit(lambda x: plain(x))(X)))


def test_a_new_entry_after_a_change_without_an_advance():
    # main: the new entry traced the current Python state while the existing one kept its old
    # closure: `jax.jit(lambda v: wg(v) + wh(v))` gave g_old + g_new**2, the answer of no world.
    # Now a trace first checks the live records and advances if one no longer holds. A
    # computation that already used wg's old closure cannot take wh's new one: WorldChangeError,
    # whose advice (run it again) gives the new world; one that meets wh first is new throughout.
    ns = notebook("""
        def g(x):
            return x
        def f(x):
            return jnp.sum(g(x))
        def h(x):
            return jnp.sum(g(x) ** 2)
    """)
    wg = jaxworld.wrap(ns["f"])
    wg(X)
    notebook("def g(x):\n    return 2.0 * x\n", ns)  # no advance
    wh = jaxworld.wrap(ns["h"])
    epoch = jaxworld.epoch()
    old_first = jax.jit(lambda v: wg(v) + wh(v))
    with pytest.raises(jaxworld.WorldChangeError, match="Run the computation again"):
        old_first(X)
    assert jaxworld.epoch() == epoch + 1  # one implicit advance
    expected = jax.jit(lambda v: ns["f"](v) + ns["h"](v))(X)
    assert_trees_close(old_first(X), expected)

    notebook("def g(x):\n    return 3.0 * x\n", ns)  # again, no advance
    wk = jaxworld.wrap(lambda x: ns["h"](x) * 0.5)
    got = jax.jit(lambda v: wk(v) + wg(v))(X)  # the new entry first: all new
    assert_trees_close(got, jax.jit(lambda v: ns["h"](v) * 0.5 + ns["f"](v))(X))


def test_an_eager_call_needing_a_trace_sees_a_consistent_world():
    # A new input signature after a change without an advance: the trace advances first, so the
    # old signature (same function) answers from the same world right after.
    ns = notebook("""
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x))
    """)
    wf = jaxworld.wrap(ns["f"])
    wf(X)
    notebook("def g(x):\n    return jnp.cos(x)\n", ns)
    assert_trees_close(wf(X[:2]), jnp.sum(jnp.cos(X[:2])))
    assert_trees_close(wf(X), jnp.sum(jnp.cos(X)))


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError],
                         ids=["KeyboardInterrupt", "exception"])
def test_an_interrupted_advance_leaves_the_old_world_whole(error):
    # main: the epoch was published before the checks, the `jax.jit` generation after them; an
    # interrupt in between left `jax.jit` in the old world and direct calls in the new one.
    ns = notebook("""
        def g(x):
            return jnp.sin(x)
        def k(x):
            return x
        def f(x):
            return jnp.sum(g(x) ** 2)
        def fk(x):
            return jnp.sum(k(x))
    """)
    wf = jaxworld.wrap(ns["f"])
    J = jax.jit(wf)
    old = np.asarray(J(X))
    wk = jaxworld.wrap(ns["fk"])  # newer: checked after f's entry
    wk(X)
    _entry(wk).record = _BlockingRecord(_entry(wk).record, raises=error("in a record check"))
    notebook("def g(x):\n    return jnp.cos(x)\n", ns)
    epoch = jaxworld.epoch()
    with pytest.raises(error, match="in a record check"):
        jaxworld.advance()
    assert jaxworld.epoch() == epoch  # nothing published
    assert_trees_close(np.asarray(wf(X)), old)  # direct calls: the old world
    assert_trees_close(np.asarray(J(X)), old)  # jax.jit: the same old world
    assert jaxworld.advance() > epoch  # the next advance checks again and publishes
    new = _plain(ns, "f")
    assert not np.allclose(new, old)
    assert_trees_close(np.asarray(J(X)), new)
    assert_trees_close(np.asarray(wf(X)), new)


def test_advance_waits_for_a_trace_in_flight():
    # A trace of a wrapped function in one thread, an advance in another: the advance publishes
    # the new world only after the trace is done, so the trace never straddles two worlds.
    started, release = threading.Event(), threading.Event()
    ns = notebook("""
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(slow_hook(x) * g(x))
    """)

    def slow_hook(x):
        started.set()
        assert release.wait(TIMEOUT_S)
        return x

    ns["slow_hook"] = slow_hook
    wf = jaxworld.wrap(ns["f"])
    epoch = jaxworld.epoch()
    caller = _run(wf, X)
    assert started.wait(TIMEOUT_S)
    writer = _run(jaxworld.advance)
    _blocked(writer[0])
    assert jaxworld.epoch() == epoch  # not published while the trace runs
    ns["slow_hook"] = lambda x: x
    release.set()
    _join(caller, writer)
    assert jaxworld.epoch() > epoch
    assert_trees_close(np.asarray(caller[1][0]), jnp.sum(X * jnp.sin(X)))
    assert_trees_close(np.asarray(wf(X)), jnp.sum(X * jnp.sin(X)))


def test_pre_trace_check_ignores_records_that_cannot_tell():
    # A record that reports a change at every check (a value nested too deeply) must not make
    # every trace advance (and so make every jax.jit in the process re-trace).
    ns = notebook("""
        deep = []
        for _ in range(2000):
            deep = [deep]
        def f(x):
            return x * 2.0 if deep else x
    """)
    jaxworld.wrap(ns["f"])(X)
    epoch = jaxworld.epoch()
    jaxworld.wrap(lambda x: x + 1.0)(X)  # a new trace
    assert jaxworld.epoch() == epoch


def _straddling_jit(ns, outer):
    """Run `jax.jit(outer)` in a thread; while its trace waits in `ns["hook"]`, redefine g1/g2
    and advance. Returns the reader's (thread, results, errors)."""
    started, release = threading.Event(), threading.Event()

    def hook():
        started.set()
        assert release.wait(TIMEOUT_S)

    ns["hook"] = hook
    reader = _run(jax.jit(outer), X)
    assert started.wait(TIMEOUT_S)
    ns["hook"] = lambda: None
    _redefine_both(ns)
    jaxworld.advance()
    release.set()
    reader[0].join(TIMEOUT_S)
    assert not reader[0].is_alive(), "deadlock: a thread did not finish"
    return reader


def test_a_nested_jit_never_caches_an_old_world_for_the_new_generation():
    # The computation started in the old world; a `jax.jit` nested in it is traced after the
    # advance, so JAX caches it under the *new* generation. Handing it the old world's closure
    # would make a later call of that jit in the new world answer the old one.
    ns, w1, w2, _, plain = _two_helpers()
    w1(X), w2(X)
    inner = jax.jit(lambda x: w2(x))

    def outer(x):
        a = w1(x)
        ns["hook"]()
        return jnp.sum(a * inner(x))

    _, results, errors = _straddling_jit(ns, outer)
    old_a = np.sin(np.asarray(X))
    if errors:  # the old world cannot be served here, and the new one would mix: an error
        assert isinstance(errors[0], jaxworld.WorldChangeError), errors
    else:
        assert_trees_close(np.asarray(results[0]), np.sum(old_a * np.asarray(X) ** 2))
    assert_trees_close(inner(X), jax.jit(lambda x: ns["f2"](x))(X))  # the new world
    assert_trees_close(jax.jit(outer)(X), jax.jit(lambda x: plain(x))(X))


def test_a_retrace_inside_an_older_computation_traces_its_helpers_in_its_own_world():
    # A wrapped function traced for the first time inside a computation pinned to an older world
    # is traced in the current world, and so are the wrapped helpers it calls: its closure is
    # cached for the current world. (Resolving those helpers in the enclosing computation's world
    # would cache an old helper inside a closure stamped current.)
    ns, w1, w2, _, _ = _two_helpers()
    w1(X), w2(X)
    notebook("def fx(x):\n    return jnp.sum(w2(x) * 2.0)\n", ns)
    ns["w2"] = w2
    wx = jaxworld.wrap(ns["fx"])  # never traced before the advance

    def outer(x):
        a = w1(x)
        ns["hook"]()
        return jnp.sum(a) + wx(x)

    _, results, errors = _straddling_jit(ns, outer)
    assert len(errors) == 1 and isinstance(errors[0], jaxworld.WorldChangeError), (errors, results)
    assert_trees_close(wx(X), jnp.sum(X ** 3 * 2.0))  # g2 of the new world inside wx
