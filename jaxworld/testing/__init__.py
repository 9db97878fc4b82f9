"""jaxworld.testing: nested-AD and world-change regression scenarios, for this project and yours.

Re-exports only; see `README.md` in this folder for what lives where.
"""

from ._builtin import builtin_suite as builtin_suite
from ._check import check as check
from ._check import matches as matches
from ._pytest_helpers import assert_passes as assert_passes
from ._pytest_helpers import parametrize as parametrize
from ._references import Comparison as Comparison
from ._report import Report as Report
from ._report import Row as Row
from ._scenario import OPERATORS as OPERATORS
from ._scenario import Scenario as Scenario
from ._scenario import WorldScenario as WorldScenario
from ._world import World as World
from ._world import fresh_function as fresh_function
