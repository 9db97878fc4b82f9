"""jaxworld: nested automatic differentiation for JAX that stays correct when code changes.

Public API (re-exports only; see the private modules for each concept).
"""

from ._closure import Derivation as Derivation, OpaqueClosure as OpaqueClosure
from ._epoch import advance as advance, epoch as epoch
from ._errors import StaleClosureError as StaleClosureError, WorldChangeError as WorldChangeError
from ._policy import get_policy as get_policy, policy as policy, set_policy as set_policy
from ._primitive import world_call_p as world_call_p
from ._stats import reset_stats as reset_stats, stats as stats
from ._operators import (
    HESSIAN_MODES as HESSIAN_MODES,
    Operator as Operator,
    Pullback as Pullback,
    grad as grad,
    hessian as hessian,
    hvp as hvp,
    jacfwd as jacfwd,
    jacrev as jacrev,
    jit as jit,
    jvp as jvp,
    value_and_grad as value_and_grad,
    vjp as vjp,
)
from ._wrap import wrap as wrap

__version__ = "0.1.0"
