"""tests/ecosystem: jaxworld with the libraries JAX users build on (issue #14).

Every test here is marked `ecosystem`: the default `pytest` run deselects them (pyproject's
`addopts`), and `tests/conftest.py` does not collect this folder when the `ecosystem` extra is
missing. Run them with ``pip install ".[test,ecosystem]"`` and
``pytest -m ecosystem tests/ecosystem``. When they are selected and a library is missing, the
import fails: a missing extra is an error to fix, not a reason to skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.ecosystem)
