"""How a record checks a NumPy array it read: the cost of a no-op advance (issue #13).

A record holds the contents of every NumPy array the traced code read (an in-place edit such as
``data[0] = 5.0`` is a change: the world-change matrix). Re-checking them is what a no-op
`advance()` pays per array, and hashing them was the whole cost of an advance with data in
memory (blake2b: ~1.5 s per GB here, after every notebook cell). Measured on this machine
(`jaxworld bench --only numpy`, medians), per check of a float64 array:

  ============================  =======  ========  ========
  check                          1 MB     100 MB    1 GB
  ============================  =======  ========  ========
  blake2b digest (before)        2.0 ms   204 ms    1,500 ms
  sha1 / crc32 digest            0.9/0.4  68/35     790/416
  bitwise compare, kept copy     0.09 ms  16 ms     182 ms
  read-only flag                 0.3 us   0.3 us    0.3 us
  ============================  =======  ========  ========

No check that reads the data is under 1 ms for 100 MB, so what is decided here is:

- Small arrays (at most `COPY_LIMIT` bytes each, `COPY_BUDGET` bytes in all): the guard keeps a
  private bitwise copy and compares against it, ~20x faster than hashing and exact (bit for bit:
  NaN equals NaN, -0.0 differs from 0.0, as the token's digest does). The copy doubles the memory
  of those arrays only, and the budget bounds what that can cost in all.
- Larger arrays: the guard hashes, as before (exact; memory-neutral; cost grows with the data).
- Opt-in, `jaxworld.freeze_captured_arrays()`: an array a record reads is made read-only
  (``arr.flags.writeable = False``); while it stays read-only neither the guard nor the walk
  reads it (its digest is kept), so an advance costs the same for 1 KB or 1 GB. A write then
  raises NumPy's "assignment destination is read-only"; to edit on purpose, set
  ``arr.flags.writeable = True`` first: the next check sees a writeable array and compares its
  digest, so the edit is caught. Only arrays that own their memory (``arr.base is None``) are
  frozen (plain `np.ndarray`
  only): a view of another array can be written through that array. What the freeze cannot see
  (the documented limits): writes through a view, `memoryview` or raw pointer made *before* the
  freeze, and an array made writeable, edited and made read-only again between two checks.

Considered and not taken: checking in IPython only the arrays a cell's code can reach (a cell
can call code that edits any array through a module global or a C extension, so it is not
sound); comparing against the copy the trace keeps (a trace keeps a device constant converted to
its dtype, e.g. float32 without x64, which does not show every edit, and on CPU may share the
array's memory).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable

import numpy as np

COPY_LIMIT = 16 * 2**20  # bytes: arrays up to this size are compared against a kept copy
COPY_BUDGET = 64 * 2**20  # bytes: all kept copies together (beyond it: hashing)

# Re-entrant: the finalizer of a kept copy (`_release`) can run in a collection inside it.
_lock = threading.RLock()
_freeze = False
_kept_bytes = 0
# Digests of the arrays frozen by `array_checker`, valid while the array is alive and still
# read-only: id -> (weak reference, digest). Entries go with their arrays (weakref callback).
_frozen: dict[int, tuple[weakref.ref, str]] = {}


def freeze_captured_arrays(enabled: bool = True) -> bool:
    """Make the NumPy arrays that traced code reads read-only, so an advance never re-reads them.

    By default jaxworld re-checks the contents of every NumPy array a live trace read at every
    `advance()` (an in-place edit is a change), which costs time in proportion to the data:
    about 2 ms per MB hashed. With freezing on, an array that a dependency record reads (and that
    owns its memory) is made read-only when the record is made; while it stays read-only, an
    advance checks only its read-only flag, whatever its size. To edit such an array, set
    ``arr.flags.writeable = True`` first: the next advance compares its contents and re-traces
    what read it if they changed. Writes through views or buffers made before the freeze are not
    seen (see README, "How jaxworld knows the world changed").

    Args:
      enabled: whether records made from now on freeze the arrays they read (arrays frozen
        already stay read-only).

    Returns:
      The previous setting.

    Example:
      >>> import numpy as np, jaxworld
      >>> previous = jaxworld.freeze_captured_arrays(True)
      >>> _ = jaxworld.freeze_captured_arrays(previous)
    """
    global _freeze
    with _lock:
        previous, _freeze = _freeze, bool(enabled)
    return previous


def _digest(data) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def array_digest(arr: np.ndarray) -> str:
    """A digest of the contents of `arr` (its bytes; element identities for object arrays)."""
    known = _frozen.get(id(arr))
    if known is not None and known[0]() is arr and not arr.flags.writeable:
        return known[1]
    if arr.dtype.hasobject:  # pointers only: element objects by identity
        return _digest(np.array([id(x) for x in arr.ravel()], dtype=np.int64).tobytes())
    flat = np.ascontiguousarray(arr).reshape(-1)  # a view unless arr is non-contiguous
    try:
        return _digest(flat.view(np.uint8))
    except (ValueError, TypeError):  # zero-itemsize dtypes and the like
        return _digest(flat.tobytes())


def _bits(arr: np.ndarray) -> np.ndarray | None:
    """The bytes of `arr` as a flat unsigned-integer array (compared bit for bit), or None."""
    if arr.dtype.hasobject or arr.dtype.itemsize == 0:
        return None
    flat = np.ascontiguousarray(arr).reshape(-1)
    try:
        raw = flat.view(np.uint8)
        return raw.view(np.uint64) if raw.size % 8 == 0 else raw
    except (ValueError, TypeError):
        return None


def _release(nbytes: int) -> None:
    global _kept_bytes
    with _lock:
        _kept_bytes -= nbytes


def _keep_copy(arr: np.ndarray) -> np.ndarray | None:
    """A private bitwise copy of `arr` within `COPY_LIMIT` / `COPY_BUDGET`, or None."""
    global _kept_bytes
    nbytes = arr.nbytes
    if nbytes > COPY_LIMIT:
        return None
    with _lock:
        if _kept_bytes + nbytes > COPY_BUDGET:
            return None
        _kept_bytes += nbytes
    bits = _bits(arr)
    if bits is None:
        _release(nbytes)
        return None
    kept = bits.copy()
    weakref.finalize(kept, _release, nbytes)
    return kept


def _forget(key: int) -> Callable[[weakref.ref], None]:
    def forget(ref: weakref.ref) -> None:
        entry = _frozen.get(key)
        if entry is not None and entry[0] is ref:
            del _frozen[key]
    return forget


def _try_freeze(arr: np.ndarray) -> bool:
    """Make `arr` read-only if freezing is on and `arr` owns its memory; whether it is frozen.

    Plain `np.ndarray` only: a subclass (a masked array) keeps state beside its data buffer.
    """
    if not _freeze or type(arr) is not np.ndarray or arr.base is not None or arr.dtype.hasobject:
        return False
    known = _frozen.get(id(arr))
    if known is not None and known[0]() is arr and not arr.flags.writeable:
        return True  # frozen by an earlier record and read-only since: its digest holds
    _frozen.pop(id(arr), None)  # made writeable since: the digest kept may be out of date
    try:
        arr.flags.writeable = False
        ref = weakref.ref(arr, _forget(id(arr)))
    except (ValueError, TypeError):
        return False
    _frozen[id(arr)] = (ref, array_digest(arr))  # hashed now that it cannot be written
    return True


def array_checker(value: np.ndarray) -> Callable[[np.ndarray], bool]:
    """`check(current)`: `current` (the array read again) still has `value`'s contents.

    The caller checks that `current` is `value` itself; this checks dtype, shape and contents.
    """
    dtype, shape = value.dtype, value.shape
    if _try_freeze(value):
        digest = array_digest(value)  # the kept one

        def frozen(a: np.ndarray) -> bool:
            return a.dtype == dtype and a.shape == shape and (
                not a.flags.writeable or array_digest(a) == digest)
        return frozen
    kept = _keep_copy(value)
    if kept is not None:
        def same_bits(a: np.ndarray) -> bool:
            if a.dtype != dtype or a.shape != shape:
                return False
            bits = _bits(a)
            return bits is not None and bits.shape == kept.shape and bool(
                np.array_equal(bits, kept))
        return same_bits
    digest = array_digest(value)
    return lambda a: a.dtype == dtype and a.shape == shape and array_digest(a) == digest


def kept_bytes() -> int:
    """Bytes held by the guards' kept copies now (for tests: never above `COPY_BUDGET`)."""
    return _kept_bytes
