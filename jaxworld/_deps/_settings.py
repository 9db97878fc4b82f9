"""Switches of the dependency records, for tests and diagnosis (not public API)."""

from __future__ import annotations

import os


class Settings:
    """`reach`: follow code through arguments, objects and libraries and cross-check the code that
    ran (issue #11); False restores the origin-only record, so tests can show what it misses.
    `verify_guards`: whenever the guards say "unchanged", walk as well and fail loudly if the walk
    disagrees (set by the test suite)."""

    __slots__ = ("reach", "verify_guards")

    def __init__(self) -> None:
        self.reach = True
        self.verify_guards = os.environ.get("JAXWORLD_VERIFY_GUARDS") == "1"


settings = Settings()
