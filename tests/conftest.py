"""A strict test environment (in the spirit of equinox's and JAX's own test setups)."""

import jax
import pytest

import jaxworld

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
