"""The pytest plugin (entry point ``jaxworld``): the `world` fixture.

Registered through ``[project.entry-points.pytest11]``, so any project with jaxworld installed
gets it. A test receives a fresh `jaxworld.testing.World`: an isolated namespace in which to
define and redefine functions (``world.define(source)``), write and reload helper modules
(``world.module(name, source)``) and advance the epoch (``world.advance()``). Everything it
added to the process is removed after the test; only the epoch stays advanced.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def world(request):
    """A fresh `jaxworld.testing.World` for this test, closed (cleaned up) afterwards."""
    from ._world import World

    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    with World(name) as w:
        yield w
