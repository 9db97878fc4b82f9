"""Cache control for measurements (`jaxworld bench`, `jaxworld check --benchmark`).

A measurement of a first call or of an `advance()` must start from what it makes live itself, not
from what earlier measurements left in JAX's caches. These two functions are the documented way
to ask `jaxworld/_epoch.py` for that, so that measuring code does not reach into it.
"""

from __future__ import annotations

from .. import _epoch


def release_caches() -> None:
    """Release JAX's cache entries made under dead world generations (and JAX's other caches).

    jaxworld does this by itself every `release_period()` relevant advances; a benchmark calls it
    so that the next measurement starts cold and does not pay for an earlier one's release.

    Example:
      >>> from jaxworld.testing import release_caches
      >>> release_caches()
    """
    _epoch.release_caches()


def release_period() -> int:
    """How many relevant advances jaxworld lets pass between two releases of dead generations.

    A benchmark of relevant changes covers whole periods (a multiple of this number of advances),
    so that the cost of the periodic release is in its mean as often as it is in real use.

    Example:
      >>> from jaxworld.testing import release_period
      >>> release_period() >= 1
      True
    """
    return _epoch.RELEASE_EVERY
