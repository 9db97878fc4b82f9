"""`jaxworld.__version__`: from the installed package's metadata (issue #16).

A source tree on ``sys.path`` that was never installed has no metadata: its version is then read
from the ``pyproject.toml`` beside the package, and failing that is ``"0+unknown"`` (PEP 440: a
local version that sorts below every release, so nothing mistakes it for one).
"""

from __future__ import annotations

import os
import tomllib
from importlib import metadata

_UNKNOWN = "0+unknown"


def _from_source_tree(package_dir: str) -> str | None:
    path = os.path.join(os.path.dirname(package_dir), "pyproject.toml")
    try:
        with open(path, "rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = project.get("version")
    return version if project.get("name") == "jaxworld" and isinstance(version, str) else None


def version() -> str:
    """The version of jaxworld: package metadata, else the source tree's pyproject.toml."""
    try:
        return metadata.version("jaxworld")
    except metadata.PackageNotFoundError:
        pass
    return _from_source_tree(os.path.dirname(os.path.abspath(__file__))) or _UNKNOWN
