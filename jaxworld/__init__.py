"""jaxworld: nested automatic differentiation for JAX that stays correct when code changes.

Public API (re-exports only; see the private modules for each concept).
"""

from ._closure import Derivation as Derivation
from ._closure import OpaqueClosure as OpaqueClosure
from ._deps._arrays import freeze_captured_arrays as freeze_captured_arrays
from ._epoch import advance as advance
from ._epoch import epoch as epoch
from ._errors import StaleClosureError as StaleClosureError
from ._errors import StaleClosureWarning as StaleClosureWarning
from ._errors import WorldChangeError as WorldChangeError
from ._explain import explain as explain
from ._ipython import auto_advance as auto_advance
from ._ipython import load_ipython_extension as load_ipython_extension
from ._ipython import unload_ipython_extension as unload_ipython_extension
from ._operators import HESSIAN_MODES as HESSIAN_MODES
from ._operators import Operator as Operator
from ._operators import Pullback as Pullback
from ._operators import grad as grad
from ._operators import hessian as hessian
from ._operators import hvp as hvp
from ._operators import jacfwd as jacfwd
from ._operators import jacrev as jacrev
from ._operators import jit as jit
from ._operators import jvp as jvp
from ._operators import value_and_grad as value_and_grad
from ._operators import vjp as vjp
from ._policy import get_policy as get_policy
from ._policy import policy as policy
from ._policy import set_policy as set_policy
from ._primitive import world_call_p as world_call_p
from ._stats import reset_stats as reset_stats
from ._stats import stats as stats
from ._version import version as _package_version
from ._wrap import wrap as wrap

__version__: str = _package_version()  # from package metadata (issue #16)

# Inside a running IPython shell or kernel: advance the epoch after every cell (opt out with
# JAXWORLD_NO_AUTO_ADVANCE=1 or `jaxworld.auto_advance(False)`; see `_ipython.py`).
from . import _ipython  # noqa: E402

_ipython.register_if_in_ipython()
