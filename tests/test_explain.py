"""`jaxworld.explain`: origin, epochs, dependencies and what changed — read-only."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = jnp.array([0.1, 0.7, -1.2])


def transitive_setup():
    ns = notebook("""
        def h(x):
            return jnp.sin(x)
        def g(x):
            return h(x) * x
        def f(x):
            return jnp.sum(g(x) ** 2)
    """, {"jnp": jnp}, filename="<ipython-input-1-0123abcd>")
    H = jaxworld.hessian(ns["f"])
    H(X)
    return ns, H


def state_of(obj):
    """Everything explain must not touch: epoch, counters, the entries' state."""
    wrapped = obj.__wrapped__
    entries = [(e.closure, e.pending, e.validated_epoch, e.closure._valid_through,
                e.closure._frozen) for e in wrapped._entries.values()]
    return jaxworld.epoch(), dict(jaxworld.stats()), entries


def test_transitive_change_names_the_helper_old_new_and_where(tmp_path):
    ns, H = transitive_setup()
    traced_epoch = jaxworld.epoch()
    # The new definition of the helper two calls deep comes from a file.
    edited = tmp_path / "edited_helpers.py"
    source = "\n\ndef h(x):\n    return jnp.cos(2.0 * x)\n"
    edited.write_text(source)
    notebook(source, ns, filename=str(edited))
    now = jaxworld.advance()

    before = state_of(H)
    text = jaxworld.explain(H)
    assert state_of(H) == before  # explain is read-only: no trace, no validation, no re-stamp

    assert "jaxworld operator hessian(f)" in text
    assert "origin: f (notebook cell [1], line 6)" in text
    assert f"traced at epoch {traced_epoch}" in text and f"current epoch {now}" in text
    assert "STALE" in text
    change = re.search(
        r"- global 'h' of module '<namespace>' \(read by f -> g\)\n"
        r"\s+old: function h at <ipython-input-1-0123abcd>:2\n"
        r"\s+new: function h at edited_helpers.py:3  \[new definition at edited_helpers.py:3\]",
        text)
    assert change, text
    # The dependency list shows the path to the helper.
    assert "global 'h' of module '<namespace>' (read by f -> g) = function h at" in text

    # After the call, explain says why it re-traced, and that nothing changed since.
    expected = jax.jit(jax.hessian(lambda x: ns["f"](x)))(X)
    assert_trees_close(H(X), expected)
    after = jaxworld.explain(H)
    assert f"traced at epoch {now}" in after and "state: current" in after
    assert f"last re-trace, at epoch {now}, because:" in after
    assert "global 'h' of module '<namespace>' (read by f -> g)" in after
    assert "changed since the trace: nothing" in after
    assert "attribute 'cos' of global 'jnp'" in after  # the new dependencies


def test_change_from_a_notebook_cell_says_so():
    ns, H = transitive_setup()
    notebook("""
        def h(x):
            return jnp.tanh(x)
    """, ns, filename="<ipython-input-7-89abcdef>")
    text = jaxworld.explain(H)  # not advanced yet: the change is not seen by any world
    assert "not yet seen by any world: call jaxworld.advance()" in text
    assert ("new: function h at <ipython-input-7-89abcdef>:2  "
            "[new definition at notebook cell [7], line 2]") in text
    assert "STALE" not in text


def test_every_signature_is_listed():
    ns, H = transitive_setup()
    H(jnp.ones(2))
    text = jaxworld.explain(H.__wrapped__)
    assert text.startswith("wrapped function f")
    assert "signature 1 of 2: (f32[3])" in text and "signature 2 of 2: (f32[2])" in text
    assert "the same as signature 1's" in text


def test_not_traced_yet():
    text = jaxworld.explain(jaxworld.wrap(lambda x: x))
    assert "not traced yet" in text


def test_derived_closure_and_pullback():
    ns, H = transitive_setup()
    wrapped = H.__wrapped__
    jaxpr = jax.make_jaxpr(jax.grad(wrapped))(X)
    closures = [e.params["closure"] for e in jaxpr.eqns if e.primitive is jaxworld.world_call_p]
    derived = [c for c in closures if c.derivation is not None]
    assert derived
    text = jaxworld.explain(derived[0])
    assert re.search(r"derived from the root closure f by: \S+", text), text
    assert "origin: f (notebook cell [1], line 6)" in text

    _, pullback = jaxworld.vjp(ns["f"], X)
    text = jaxworld.explain(pullback)
    assert text.startswith("pullback OpaqueClosure pullback(f)")
    assert "transpose of linearize.tangent" in text


def test_wrapped_helpers_called_are_listed():
    ns = notebook("""
        scale = 2.0
        @jaxworld.wrap
        def inner(x):
            return jnp.sin(x) * scale
        def outer(x):
            return jnp.sum(inner(x) ** 2)
    """, {"jnp": jnp, "jaxworld": jaxworld}, filename="<ipython-input-3-00000000>")
    G = jaxworld.grad(ns["outer"])
    G(X)
    ns["scale"] = 3.0
    jaxworld.advance()
    text = jaxworld.explain(G)
    assert "calls wrapped helper inner: STALE since epoch" in text
    assert "global 'scale'" in text and "old: 2.0" in text and "new: 3.0" in text


def test_explain_rejects_other_objects_clearly():
    # Anything may hold wrapped functions (issue #14): explain looks inside, and says so when it
    # finds none.
    with pytest.raises(TypeError, match=re.escape(
            "jaxworld.explain: found no wrapped function (jaxworld.wrap), OpaqueClosure or "
            "jaxworld operator in function <function")) as info:
        jaxworld.explain(lambda x: x)
    assert "Wrap the function first: `f = jaxworld.wrap(f)`" in str(info.value)
