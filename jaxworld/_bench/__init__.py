"""`jaxworld bench`: jaxworld side by side with plain JAX, in one process (issue #6).

Every figure is a ratio *jaxworld / plain JAX* of medians over interleaved A/B repetitions taken
after a warm-up: each repetition times jaxworld and plain JAX back to back, alternating which goes
first, and the reported ratio is the median of the per-repetition ratios (robust to a machine
whose load drifts, e.g. other processes sharing its cores). Absolute times are the medians of
each side.

Functions (each built by `exec` of its source into a fresh namespace, the way a notebook cell
defines it, so "fresh" really means new function objects and "a relevant change" means redefining
the helper the loss calls):

- ``mlp``: a two-layer MLP-like loss of an input of size n (n x n weights, tanh helper);
- ``rosenbrock``: the chained Rosenbrock function, its term as the helper.

Benchmarks (one row each per function and size unless noted):

1. ``steady grad|hvp|hessian``: a prepared `jaxworld.grad/hvp/hessian` call vs ``jax.jit`` of the
   plain transformation (C++ dispatch + the compiled computation).
2. ``first call hessian``: trace + compile of `jaxworld.hessian(f)` vs ``jax.jit(jax.hessian(f))``.
3. ``no-op advance``: the first call after an `advance()` that found nothing changed vs a
   steady-state call of the same operator (baseline is jaxworld itself).
4. ``relevant change``: ``advance()`` + first call after redefining the helper vs plain JAX
   compiling a fresh ``jax.jit(jax.hessian(f))`` of the new definition. ``relevant change, plain
   invalidated``: the same jaxworld time vs plain JAX compiling afresh right after the same
   cache-key change a relevant advance makes (a new JAX user-context value), which makes JAX
   re-trace its own jitted helpers too: the cost of keeping plain ``jax.jit`` correct.
5. ``flops grad|hvp|hessian``: compiled FLOPs of the operators of 1 (``jax.jit`` of the
   transformation of `jaxworld.wrap(f)`) vs plain (``cost_analysis()["flops"]``; deterministic).
6. ``trace 20 call sites``: first ``jax.make_jaxpr(jax.hessian(F))`` of a function calling one
   wrapped helper in 20 places vs the same helper inline (one size).
7. ``memory``: growth of the resident set over redefine-advance-call cycles (absolute; plain JAX
   re-creating its jit each cycle shown for reference).
8. ``re-jit every call``: the correct-but-slow plain-JAX alternative, re-creating
   ``jax.jit(jax.hessian(f))`` on every call, vs jaxworld's prepared operator.
9. ``trace with dependency record``: what a wrapped function's trace costs with its dependency
   record (capture before, re-check after, the check of the code that ran) vs the bare trace;
   also for ``model``, a loss whose model (a pytree dataclass with a method) is an argument.
   ``re-trace after a change``: the same after the helper is redefined and the record checked
   (what ``advance()`` does, untimed): the re-trace reuses the walk that check made.
10. ``no-op advance, realistic globals``: an `advance()` with a live Hessian of a function that
   reads a logger, a config dict, PRNG keys, a list of arrays and a NumPy table; it re-traces and
   re-compiles nothing (``traces`` / ``compilations`` in the detail).
11. ``eager dispatch``: an eager call of ``jaxworld.wrap(f)`` vs ``jax.jit(f)`` on the same
   function of a dict of 1, 20 and 200 small arrays (issue #14: notebooks call things eagerly);
   the size column is the number of leaves.

matplotlib is imported only for ``--plot``.

Layout: one module per measurement group (`--only` names it): `_steady.py` (1, 5, 8),
`_first.py` (2), `_advance.py` (3, 4), `_trace.py` (6), `_memory.py` (7), `_capture.py` (9, 10),
`_eager.py` (11); `_common.py` (the functions, timing, `Row`, `Config`), `_report.py` (table,
Markdown, JSON, plot), `_runner.py` (the table of groups, `run`, the command line). The groups
read jaxworld's public API and `jaxworld.testing.release_caches` / `release_period` only (the
`capture` group also reads a wrapped function's trace entry: it measures the record itself).
"""

from ._advance import bench_advance as bench_advance
from ._capture import bench_capture as bench_capture
from ._capture import bench_noop_realistic as bench_noop_realistic
from ._common import FUNCTIONS as FUNCTIONS
from ._common import TARGETS as TARGETS
from ._common import Config as Config
from ._common import Row as Row
from ._eager import bench_eager_dispatch as bench_eager_dispatch
from ._first import bench_first_call as bench_first_call
from ._memory import bench_memory as bench_memory
from ._memory import rss_mb as rss_mb
from ._report import format_markdown as format_markdown
from ._report import format_table as format_table
from ._report import machine as machine
from ._report import plot as plot
from ._report import to_json as to_json
from ._runner import GROUPS as GROUPS
from ._runner import add_arguments as add_arguments
from ._runner import main as main
from ._runner import run as run
from ._steady import bench_steady as bench_steady
from ._trace import bench_trace_call_sites as bench_trace_call_sites
