"""The notebooks in `notebooks/` run top to bottom in a real Jupyter kernel (issue #5).

Each notebook is executed with nbclient in a fresh IPython kernel running this interpreter
(`sys.executable`, so the kernel sees the same installed jaxworld as the tests); any cell that
raises — including the notebooks' own asserts against plain JAX — fails the test. The committed
copies must carry their outputs (readers see the plots on the repository page).

Run: ``pytest -m notebooks tests/test_notebooks.py`` (needs the ``notebook`` extra).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest


class _Lazy:
    """Imports a `notebook`-extra module on first use, so that the default `pytest` run (which
    deselects these tests) collects this file without the extra. When the tests are selected
    (`-m notebooks`), a missing extra is an error to fix, not a reason to skip."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        import importlib

        try:
            for needed in ("ipykernel", "matplotlib"):  # the kernel, and the notebooks' plots
                importlib.import_module(needed)
            module = importlib.import_module(self._name)
        except ImportError as missing:
            raise ImportError(
                f"tests/test_notebooks.py needs the `notebook` extra ({missing.name} is "
                "missing): pip install '.[notebook]'") from missing
        return getattr(module, attr)


nbclient = _Lazy("nbclient")
nbformat = _Lazy("nbformat")

pytestmark = pytest.mark.notebooks

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 300


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A `python3` kernelspec that runs this interpreter, found before any user-level one.

    `JUPYTER_PATH` comes first in Jupyter's search path, so a `python3` kernel registered for
    another Python in the user's home cannot capture the run.
    """
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({sys.executable})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # A backend forced in the environment (MPLBACKEND=Agg in CI) would swallow the inline plots.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return KERNEL_NAME


def _execute(nb, workdir: Path, kernel_name: str):
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT_S, record_timing=False,
        resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return nb


def _outputs(nb, cell_type: str = "code"):
    for cell in nb.cells:
        if cell.cell_type == cell_type:
            yield from cell.get("outputs", [])


def _has_png(nb) -> bool:
    return any("image/png" in out.get("data", {}) for out in _outputs(nb))


def _sources(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    for required in ("01_quickstart.ipynb", "02_newton_logistic_regression.ipynb",
                     "03_hessian_spectrum.ipynb", "05_equinox_hessians.ipynb"):
        assert required in names, f"notebooks/{required} is missing; found {names}"


def test_kernel_runs_this_python(kernel, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import sys, jaxworld\nprint(sys.executable)"))
    _execute(nb, tmp_path, kernel)
    printed = "".join(out.get("text", "") for out in _outputs(nb)).strip()
    assert os.path.realpath(printed) == os.path.realpath(sys.executable), (
        f"the kernel ran {printed!r}, expected this interpreter {sys.executable!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_with_outputs(path):
    """Committed notebooks are executed copies: every code cell ran, in order, with a plot."""
    nb = nbformat.read(path, as_version=4)
    counts = [cell.execution_count for cell in nb.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts}; commit the notebook executed top to bottom "
        "in a fresh kernel (see notebooks/README.md)")
    assert _has_png(nb), f"{path.name}: no PNG plot in the committed outputs"
    errors = [out for out in _outputs(nb) if out.get("output_type") == "error"]
    assert not errors, f"{path.name}: committed outputs contain an error: {errors[0]}"


# Notebooks that need more than the `notebook` extra (issue #14): the kernel imports these.
NEEDS = {"05_equinox_hessians.ipynb": (("equinox", "optax"), "ecosystem")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel, tmp_path):
    import importlib.util

    modules, extra = NEEDS.get(path.name, ((), None))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:  # an error to fix, not a reason to skip
        raise ImportError(f"{path.name} needs the `{extra}` extra ({', '.join(missing)} "
                          f"missing): pip install '.[notebook,{extra}]'")
    nb = nbformat.read(path, as_version=4)
    assert "%load_ext jaxworld" in _sources(nb), f"{path.name} does not load the extension"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    start = time.perf_counter()
    _execute(nb, tmp_path, kernel)  # raises CellExecutionError on any failing cell
    elapsed = time.perf_counter() - start
    assert _has_png(nb), f"{path.name} produced no inline PNG plot"
    print(f"{path.name}: executed in {elapsed:.1f} s")


# -- Issue #12, item 3: each cell and each top-level statement in the latest world -------------
# A real kernel (nbclient), not an InteractiveShell: the hooks run where users meet them.

def _run_cells(kernel_name: str, workdir: Path, *cells: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return _execute(nb, workdir, kernel_name)  # any failing assert raises CellExecutionError


_CHECK_NEW = """
import numpy as np
assert not np.allclose(H_old, expected, rtol=2e-5, atol=2e-5), "the change changes the Hessian"
np.testing.assert_allclose(H_new, expected, rtol=2e-5, atol=2e-5)
np.testing.assert_allclose(P_new, expected, rtol=2e-5, atol=2e-5)
print("new world")
"""


def test_kernel_autoreload_edit_then_call_in_the_next_cell(kernel, tmp_path):
    # `%autoreload 2` reloads the edited module in `pre_run_cell`; the cell that calls the
    # prepared Hessians next must see it (main: it got the old Hessian, one cell late).
    module = tmp_path / "jw_helpers.py"
    module.write_text("import jax.numpy as jnp\n\ndef g(x):\n    return jnp.sin(x)\n")
    nb = _run_cells(
        kernel, tmp_path,
        "%load_ext autoreload\n%autoreload 2",
        f"import sys\nsys.dont_write_bytecode = True\nsys.path.insert(0, {str(tmp_path)!r})\n"
        "import jax, jax.numpy as jnp, jaxworld, jw_helpers",
        "def f(x):\n    return jnp.sum(jw_helpers.g(x) ** 2)\n\n"
        "H = jaxworld.hessian(f)\nP = jax.jit(jax.hessian(jaxworld.wrap(f)))\n"
        "x = jnp.array([0.3, -0.5, 1.2])\nH_old, P_old = H(x), P(x)",
        # The edit, as an editor would make it (the mtime moved on, so autoreload notices).
        f"import os, pathlib\np = pathlib.Path({str(module)!r})\n"
        "p.write_text(p.read_text().replace('jnp.sin(x)', '3.0 * jnp.cos(x)'))\n"
        "st = os.stat(p)\nos.utime(p, (st.st_atime + 10, st.st_mtime + 10))",
        "H_new, P_new = H(x), P(x)  # the first cell after the edit\n"
        "expected = jax.hessian(lambda y: jnp.sum((3.0 * jnp.cos(y)) ** 2))(x)\n" + _CHECK_NEW)
    assert "new world" in "".join(out.get("text", "") for out in _outputs(nb))


def test_kernel_redefinition_and_call_in_the_same_cell(kernel, tmp_path):
    # `def g` and then the calls, in one cell: each top-level statement runs in the latest world
    # (main: the prepared Hessians answered the old world until the next cell).
    nb = _run_cells(
        kernel, tmp_path,
        "import jax, jax.numpy as jnp, jaxworld\n\n"
        "def g(x):\n    return jnp.sin(x)\n\n"
        "def f(x):\n    return jnp.sum(g(x) ** 2)\n\n"
        "H = jaxworld.hessian(f)\nP = jax.jit(jax.hessian(jaxworld.wrap(f)))\n"
        "x = jnp.array([0.3, -0.5, 1.2])\nH_old, P_old = H(x), P(x)",
        "def g(x):\n    return 3.0 * jnp.cos(x)\n\n"
        "H_new, P_new = H(x), P(x)\n"
        "expected = jax.jit(jax.hessian(lambda y: f(y)))(x)\n" + _CHECK_NEW)
    assert "new world" in "".join(out.get("text", "") for out in _outputs(nb))
