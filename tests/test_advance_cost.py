"""What a no-op advance reads of the NumPy arrays live traces depend on (issue #13, item 4).

Small arrays are compared bit for bit against a kept copy, large ones by digest, and with
`jaxworld.freeze_captured_arrays()` a frozen array is not read at all. Each way must still catch
an in-place edit: every row compares against plain JAX traced fresh in the new world. Timings are
in `jaxworld bench --only numpy` (BENCHMARKS.md), not here: these tests count what is read.
"""

from __future__ import annotations

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld
from jaxworld._deps import _arrays

from .helpers import assert_trees_close, notebook

X = np.array([0.3, -0.7, 1.1], dtype=np.float32)

SOURCE = """
w = np.array([1.0, 2.0, 3.0], dtype=np.float32)
def f(x):
    return jnp.sum(w * x ** 3)
"""


def fresh_hessian(ns: dict) -> jax.Array:
    """Plain JAX in the current world: a new callable each time, so no JAX cache applies."""
    return jax.jit(jax.hessian(lambda x: ns["f"](x)))(jnp.asarray(X))


PREPARED = pytest.mark.parametrize(
    "prepare", [jaxworld.hessian, lambda f: jax.jit(jax.hessian(jaxworld.wrap(f)))],
    ids=["jaxworld.hessian", "jax.jit(jax.hessian(wrap(f)))"])


@pytest.fixture
def freeze():
    previous = jaxworld.freeze_captured_arrays(True)
    yield
    jaxworld.freeze_captured_arrays(previous)


class _Reads:
    """Reads of the contents of the arrays in `of`: digests hashed, bitwise comparisons made."""

    def __init__(self) -> None:
        self.of: list[np.ndarray] = []
        self.digests = self.compares = 0

    def mine(self, data) -> bool:
        # Records of earlier tests may still be alive, and an advance checks theirs too. A
        # digest of a copy (bytes of non-contiguous data) cannot be told apart: it counts.
        return not isinstance(data, np.ndarray) or any(
            np.shares_memory(data, a) for a in self.of)


@pytest.fixture
def reads(monkeypatch):
    """Counts the reads of the contents of the arrays a test puts in `reads.of`."""
    counts = _Reads()
    digest, bits = _arrays._digest, _arrays._bits

    def counting_digest(data):
        counts.digests += counts.mine(data)
        return digest(data)

    def counting_bits(arr):
        counts.compares += counts.mine(arr)
        return bits(arr)

    monkeypatch.setattr(_arrays, "_digest", counting_digest)
    monkeypatch.setattr(_arrays, "_bits", counting_bits)
    return counts


def check_edit(prepare, ns: dict, edit) -> None:
    """Prepared before `edit`; after it and an advance, plain JAX's new answer."""
    H = prepare(ns["f"])
    x = jnp.asarray(X)
    before = H(x)
    assert_trees_close(before, fresh_hessian(ns))
    edit(ns)
    expected = fresh_hessian(ns)
    assert not np.allclose(before, expected), "the edit must change the Hessian"
    jaxworld.advance()
    assert_trees_close(H(x), expected)
    assert_trees_close(H(x), expected)


def _edit_in_place(ns: dict) -> None:
    ns["w"][:] = [-4.0, 0.5, 6.0]


@pytest.fixture
def kept(monkeypatch):
    """The copies the guards keep, as (dtype, shape) of the array copied."""
    copies = []
    keep = _arrays._keep_copy

    def spy(arr):
        copy = keep(arr)
        if copy is not None:
            copies.append((arr.dtype, arr.shape))
        return copy

    monkeypatch.setattr(_arrays, "_keep_copy", spy)
    return copies


@PREPARED
def test_in_place_edit_caught_by_the_kept_copy(prepare, kept):
    ns = notebook(SOURCE)
    check_edit(prepare, ns, _edit_in_place)
    assert (np.dtype(np.float32), (3,)) in kept  # the guard really kept a copy of w


@PREPARED
def test_in_place_edit_caught_by_the_digest_above_the_copy_limit(prepare, kept, monkeypatch):
    monkeypatch.setattr(_arrays, "COPY_LIMIT", 0)
    ns = notebook(SOURCE)
    check_edit(prepare, ns, _edit_in_place)
    assert kept == []  # nothing kept: the digest path was taken


def test_the_kept_copy_compares_bit_for_bit():
    a = np.array([0.0, np.nan, 1.5, -np.inf])
    check = _arrays.array_checker(a)
    assert check(a)  # NaN equals itself bit for bit (np.array_equal of floats would say no)
    a[0] = -0.0
    assert not check(a)  # -0.0 == 0.0 as floats, but not as a token's digest
    a[0] = 0.0
    assert check(a)
    a[3] = np.inf
    assert not check(a)
    a.shape = (2, 2)  # same memory, other shape: a change of the token
    assert not check(a)


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.complex128, np.bool_])
def test_the_kept_copy_sees_a_change_of_one_element(dtype):
    a = np.zeros(13, dtype=dtype)  # 13 elements: sizes not a multiple of 8 bytes too
    check = _arrays.array_checker(a)
    a[12] = 1
    assert not check(a)
    a[12] = 0
    assert check(a)


def test_kept_copies_stay_within_their_budget_and_are_released(monkeypatch):
    gc.collect()
    gc.disable()  # no other record's copies freed meanwhile: the counts below are exact
    try:
        start = _arrays.kept_bytes()
        monkeypatch.setattr(_arrays, "COPY_BUDGET", start + 3 * 800)
        arrays = [np.arange(100.0) for _ in range(5)]  # 800 bytes each: three fit
        checks = [_arrays.array_checker(a) for a in arrays]
        assert _arrays.kept_bytes() == start + 3 * 800
        for a, check in zip(arrays, checks, strict=True):  # beyond the budget: digests, as exact
            assert check(a)
            a[50] = -1.0
            assert not check(a)
        del checks, check
        assert _arrays.kept_bytes() == start
    finally:
        gc.enable()


@PREPARED
def test_frozen_array_is_not_read_by_a_no_op_advance(prepare, freeze, reads):
    ns = notebook(SOURCE.replace("[1.0, 2.0, 3.0]", "np.linspace(1.0, 3.0, 3)"))
    H = prepare(ns["f"])
    x = jnp.asarray(X)
    assert_trees_close(H(x), fresh_hessian(ns))
    assert not ns["w"].flags.writeable
    reads.of.append(ns["w"])
    reads.digests = reads.compares = 0
    jaxworld.reset_stats()
    jaxworld.advance()
    jaxworld.advance()
    assert (reads.digests, reads.compares) == (0, 0)
    assert_trees_close(H(x), fresh_hessian(ns))
    assert jaxworld.stats()["traces"] == 0


def test_a_no_op_advance_reads_nothing_of_a_frozen_array_whatever_its_size(freeze, reads):
    ns = notebook("big = np.ones((512, 1024))\n"  # 4 MB
                  "def f(x):\n"
                  "    return jnp.sum(jnp.asarray(big[:3, :3]) @ x ** 3)\n")
    H = jaxworld.hessian(ns["f"])
    x = jnp.asarray(X)
    assert_trees_close(H(x), fresh_hessian(ns))
    reads.of.append(ns["big"])
    reads.digests = reads.compares = 0
    jaxworld.advance()
    assert (reads.digests, reads.compares) == (0, 0)


def test_writing_a_frozen_array_fails_loudly(freeze):
    ns = notebook(SOURCE)
    jaxworld.hessian(ns["f"])(jnp.asarray(X))
    with pytest.raises(ValueError, match="read-only"):
        ns["w"][0] = 7.0


@PREPARED
def test_a_frozen_array_made_writeable_and_edited_is_caught(prepare, freeze):
    ns = notebook(SOURCE)

    def unfreeze_and_edit(ns):
        ns["w"].flags.writeable = True
        _edit_in_place(ns)

    check_edit(prepare, ns, unfreeze_and_edit)
    assert not ns["w"].flags.writeable  # read again by the new trace: frozen again


@PREPARED
def test_a_view_is_not_frozen_and_edits_through_its_base_are_caught(prepare, freeze):
    ns = notebook("""
        base = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
        w = base[:3]
        def f(x):
            return jnp.sum(w * x ** 3)
    """)
    check_edit(prepare, ns, lambda ns: ns["base"].__setitem__(slice(0, 3), [-4.0, 0.5, 6.0]))
    assert ns["w"].flags.writeable and ns["base"].flags.writeable


def test_arrays_are_not_frozen_by_default():
    assert not jaxworld.freeze_captured_arrays(False)  # the default is off
    ns = notebook(SOURCE)
    jaxworld.hessian(ns["f"])(jnp.asarray(X))
    assert ns["w"].flags.writeable


def test_bench_rows_of_the_no_op_advance_against_numpy_data():
    from jaxworld import _bench
    from jaxworld._bench import _numpy_data

    cfg = _bench.Config.make(quick=True)
    rows = _numpy_data.bench_noop_numpy(cfg, sizes_mb=(1,))
    assert [(r.function, r.n) for r in rows] == [("default", 1), ("frozen", 1)]
    for row in rows:
        assert row.benchmark in _numpy_data.TARGETS and row.reps >= 3
        assert row.detail["traces_after_advances"] == 0
        assert row.detail["data_bytes"] == 2**20
        assert row.detail["frozen"] == (row.function == "frozen")
    assert not jaxworld.freeze_captured_arrays(False)  # the rows leave the setting as it was
