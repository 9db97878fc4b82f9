"""Dependency records: what a trace depended on, and whether it changed.

A jaxpr traced from a Python callable (the *origin*) bakes in everything Python code read while
tracing: helper functions, global constants, closure cells, NumPy arrays, the code of the objects
passed in. `DependencyRecord.capture(fun, roots=...)` walks what `fun` and the extra roots (a
wrapped function's argument skeleton: static arguments, and argument pytrees rebuilt with avals)
can reach and snapshots it; `record.cover(jaxpr, boundary)` checks that the walk reached all the
user code that ran during the trace (read from the jaxpr's tracebacks; code it did not reach makes
the record re-trace at every advance); `record.changes()` walks again and lists what differs. The
walk over-approximates on purpose: reporting something the trace did not use costs a re-trace;
missing something it did use would serve a stale trace.

One module per job:

* `_classify`: which code is the user's (walked) and which a library's (compared by identity);
* `_tokens`: snapshot tokens, digests and short descriptions;
* `_guards`: the fast, exact "nothing changed" (every place read, compared by identity);
* `_walk`: the walk, as two type -> rule tables (`TOKENIZERS` for data, `EXPANDERS` for code);
* `_ran`: the code that ran during a trace, from the equations' tracebacks;
* `_record`: `DependencyRecord`, `Change`, `Site`.

Out of reach (limitations): state mutated in place behind opaque C types; fields of library
objects that no user code names, that hold no user code and that are not data-like (dataclass,
``SimpleNamespace``); elements of object-dtype arrays (compared by identity); names computed at
run time (``getattr(obj, "s" + suffix)``; a name that is a string constant of the code, as in
``globals()["SCALE"]``, is read) unless the code they reach ran JAX operations during the trace;
values computed by descriptors or a module's ``__getattr__``; globals of library code; data read
from files or RNGs while tracing. Values nested deeper than `_tokens._MAX_DEPTH`, values that
raise when inspected, and code that ran but cannot be found again make a record unverifiable: it
reports a change at every check (safe, not fast).

Cost: a record that still holds is confirmed by its guards (~1 us per namespace at C speed); a
guard that fails only means "maybe changed": `changes()` then walks, linear in the reachable
objects, plus hashing the bytes of every reachable NumPy array (pass a shared ``memo`` dict to the
records checked in one `advance()` to hash shared arrays once).
"""

from ._ran import reused_user_traces as reused_user_traces
from ._record import Change as Change
from ._record import DependencyRecord as DependencyRecord
from ._record import Site as Site
from ._settings import settings as settings
from ._walk import EXPANDERS as EXPANDERS
from ._walk import TOKENIZERS as TOKENIZERS
