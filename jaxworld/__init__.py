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
from ._explain import explain as explain
from ._ipython import (
    auto_advance as auto_advance,
    load_ipython_extension as load_ipython_extension,
    unload_ipython_extension as unload_ipython_extension,
)

__version__ = "0.1.0"

# Inside a running IPython shell or kernel: advance the epoch after every cell (opt out with
# JAXWORLD_NO_AUTO_ADVANCE=1 or `jaxworld.auto_advance(False)`; see `_ipython.py`).
from . import _ipython  # noqa: E402

_ipython.register_if_in_ipython()
