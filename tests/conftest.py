"""A strict test environment (in the spirit of equinox's and JAX's own test setups)."""

import importlib.util

import jax
import pytest

import jaxworld

# tests/ecosystem needs the `ecosystem` extra (issue #14). The default run deselects it; without
# the extra it is not even collected (its modules import equinox, flax, ... at the top). With the
# extra installed, `pytest -m ecosystem tests/ecosystem` runs it: never a skip.
_ECOSYSTEM = ("equinox", "optax", "optimistix", "lineax", "flax", "blackjax")
collect_ignore = ([] if all(importlib.util.find_spec(m) is not None for m in _ECOSYSTEM)
                  else ["ecosystem"])

# Implicit rank promotion hides shape bugs; jaxworld must behave like plain JAX under it.
jax.config.update("jax_numpy_rank_promotion", "raise")

# Dependency records answer "unchanged" from their guards without walking (`_deps`, "Guards").
# In the tests, every such answer is checked against a full walk: a disagreement fails loudly.
jaxworld._deps.settings.verify_guards = True


@pytest.fixture(params=[False, True], ids=["x32", "x64"])
def x64(request):
    """Run a test under both `jax_enable_x64` settings (scoped, nothing leaks)."""
    with jax.enable_x64(request.param):
        yield request.param


@pytest.fixture
def enable_x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def _fresh_stats():
    jaxworld.reset_stats()
    yield
