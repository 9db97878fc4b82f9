"""Execute notebooks top to bottom in a fresh Jupyter kernel and save them with their outputs.

Usage (with the `notebook` extra installed):

    python notebooks/execute.py                      # every notebooks/*.ipynb
    python notebooks/execute.py notebooks/01_quickstart.ipynb

The kernel runs this interpreter (`sys.executable`), whatever `python3` kernels are registered
elsewhere. A failing cell stops the run with the cell's error and leaves the file untouched.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def execute(path: Path, *, timeout: int = 300) -> float:
    """Execute `path` in a fresh kernel and save it in place; return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    with tempfile.TemporaryDirectory() as jupyter_path:
        spec_dir = Path(jupyter_path, "kernels", "python3")
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python"}))
        env = {"JUPYTER_PATH": jupyter_path}
        saved = {k: os.environ.get(k) for k in (*env, "MPLBACKEND")}
        os.environ.update(env)
        os.environ.pop("MPLBACKEND", None)  # a forced backend would swallow the inline plots
        try:
            start = time.perf_counter()
            nbclient.NotebookClient(
                nb, kernel_name="python3", timeout=timeout, record_timing=False,
                resources={"metadata": {"path": str(HERE)}}).execute()
            elapsed = time.perf_counter() - start
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: executed and saved in {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
