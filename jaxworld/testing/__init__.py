"""jaxworld.testing: nested-AD and world-change regression scenarios, for this project and yours.

Re-exports only; see `README.md` in this folder for what lives where.
"""

from ._benchmark import benchmark as benchmark
from ._builtin import builtin_suite as builtin_suite
from ._caches import release_caches as release_caches
from ._caches import release_period as release_period
from ._check import check as check
from ._check import matches as matches
from ._matrix import ScenarioList as ScenarioList
from ._matrix import Skipped as Skipped
from ._matrix import scenarios_for as scenarios_for
from ._modifiers import batchify as batchify
from ._modifiers import closurify as closurify
from ._modifiers import constantify as constantify
from ._modifiers import jitify as jitify
from ._modifiers import x64ify as x64ify
from ._mutants import mutants as mutants
from ._mutants import mutants_of as mutants_of
from ._pytest_helpers import assert_passes as assert_passes
from ._pytest_helpers import parametrize as parametrize
from ._references import Comparison as Comparison
from ._references import prepare as prepare
from ._report import Report as Report
from ._report import Row as Row
from ._scenario import OPERATORS as OPERATORS
from ._scenario import Scenario as Scenario
from ._scenario import WorldScenario as WorldScenario
from ._stability import PreparationMismatchError as PreparationMismatchError
from ._stability import PreparedOperator as PreparedOperator
from ._world import World as World
from ._world import fresh_function as fresh_function
