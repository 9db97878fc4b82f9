"""What to do with a trace whose dependencies changed: the stale-closure policy.

- ``"retrace"`` (default): re-trace from the origin in the new world.
- ``"warn"``: re-trace, and warn naming what changed.
- ``"error"``: raise `jaxworld.StaleClosureError` naming what changed and where.
- ``"frozen"``: keep using the old world's trace, as `jax.jit` does.

Precedence (issue #12): the innermost decision wins. A block (``with jaxworld.policy(...):``)
is a decision about the calls made inside it, so it wins over a wrapped function's own policy
(``wrap(..., policy=...)``), which wins over the global one (`jaxworld.set_policy`). That is what
makes the advice in `StaleClosureError` work for every function: ``with
jaxworld.policy('retrace'):`` around the call re-traces it, ``with jaxworld.policy('frozen'):``
keeps the old world, whatever the function was wrapped with.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Literal

Policy = Literal["retrace", "warn", "error", "frozen"]
POLICIES: tuple[str, ...] = ("retrace", "warn", "error", "frozen")

_global_policy: str = "retrace"
_block_policy: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jaxworld_policy", default=None)


def check_policy(policy: object, api: str) -> str:
    if policy not in POLICIES:
        raise ValueError(
            f"{api}: unknown policy {policy!r}. Expected one of {', '.join(map(repr, POLICIES))}.")
    return policy  # type: ignore[return-value]


def set_policy(policy: Policy) -> None:
    """Set the process-wide policy for stale closures (default ``"retrace"``).

    Raises:
      ValueError: `policy` is not one of 'retrace', 'warn', 'error', 'frozen'.

    Example:
      >>> import jaxworld
      >>> jaxworld.set_policy("warn"); jaxworld.set_policy("retrace")
    """
    global _global_policy
    _global_policy = check_policy(policy, "jaxworld.set_policy")


def get_policy() -> str:
    """The policy in force here (block policy if inside `jaxworld.policy`, else the global one)."""
    return _block_policy.get() or _global_policy


def effective_policy(own: str | None) -> str:
    """The policy for a wrapped function whose own policy is `own`: block > own > global."""
    return _block_policy.get() or own or _global_policy


@contextlib.contextmanager
def policy(policy: Policy) -> Iterator[None]:
    """Use `policy` for stale closures met inside the ``with`` block (this thread / task only).

    It wins over the policy a function was wrapped with (``wrap(..., policy=...)``) and over the
    global one (`jaxworld.set_policy`).

    Raises:
      ValueError: `policy` is not one of 'retrace', 'warn', 'error', 'frozen'.

    Example:
      >>> import jaxworld
      >>> with jaxworld.policy("error"):
      ...     pass
    """
    token = _block_policy.set(check_policy(policy, "jaxworld.policy"))
    try:
        yield
    finally:
        _block_policy.reset(token)
