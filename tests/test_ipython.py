"""Notebooks: a real IPython `InteractiveShell` running cells advances the epoch after each one.

Each test runs in a fresh Python process: an `InteractiveShell` replaces process-wide state
(`sys.modules["__main__"]`, display hooks), and the automatic registration happens at
`import jaxworld`, which a test process has long done. The shell's history is kept in memory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("IPython")

PRELUDE = '''
import json, sys
from traitlets.config import Config
from IPython.core.interactiveshell import InteractiveShell

config = Config()
config.HistoryManager.hist_file = ":memory:"
shell = InteractiveShell.instance(config=config)
results = {}

def run(source):
    outcome = shell.run_cell(source, store_history=True)
    if not outcome.success:
        outcome.raise_error()

def hooks():
    import jaxworld._ipython as m
    return shell.events.callbacks["post_run_cell"].count(m._advance_after_cell)

def transformers():
    import jaxworld._ipython as m
    return sum(t is m._TRANSFORMER for t in shell.ast_transformers)

def close(name_a, name_b):
    import numpy as np
    a, b = shell.user_ns[name_a], shell.user_ns[name_b]
    return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5))

PREPARE = """
import jax, jax.numpy as jnp, jaxworld
def g(x):
    return jnp.sin(x)
def f(x):
    return jnp.sum(g(x) ** 2)
H = jaxworld.hessian(f)
P = jax.jit(jax.hessian(jaxworld.wrap(f)))
x = jnp.array([0.3, -0.5, 1.2])
H_old, P_old = H(x), P(x)
"""
REDEFINE = """
def g(x):
    return 3.0 * jnp.cos(x)
"""
CALL = """
H_new, P_new = H(x), P(x)
expected = jax.jit(jax.hessian(lambda y: f(y)))(x)
"""
'''


def run_shell(body: str, **env) -> dict:
    script = PRELUDE + textwrap.dedent(body) + "\nprint('RESULTS=' + json.dumps(results))\n"
    environment = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
    environment.pop("JAXWORLD_NO_AUTO_ADVANCE", None)
    environment.update(env)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=environment)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS=")][-1]
    return json.loads(line[len("RESULTS="):])


def test_load_ext_advances_after_every_cell():
    results = run_shell("""
        run("%load_ext jaxworld")
        results["hooks_after_load_ext"] = hooks()
        run("%load_ext jaxworld")
        run("import jaxworld; jaxworld.load_ipython_extension(get_ipython())")
        results["hooks_after_loading_again"] = hooks()
        run(PREPARE)
        epoch_before = shell.user_ns["jaxworld"].epoch()
        run(REDEFINE)
        results["epochs_per_cell"] = shell.user_ns["jaxworld"].epoch() - epoch_before
        results["transformers"] = transformers()
        run(CALL)  # no advance() anywhere in the cells
        results["H_new_is_new_world"] = close("H_new", "expected")
        results["P_new_is_new_world"] = close("P_new", "expected")
        results["old_differs"] = not close("H_old", "expected")
        run("explanation = jaxworld.explain(H)")
        results["explanation"] = shell.user_ns["explanation"]
        run("%unload_ext jaxworld")
        results["hooks_after_unload"] = hooks() + transformers()
    """, JAXWORLD_NO_AUTO_ADVANCE="1")  # so that only %load_ext registers the hook
    assert results["hooks_after_load_ext"] == 1
    assert results["hooks_after_loading_again"] == 1  # idempotent
    # One implicit advance after `def g` (a live record changed), one after the cell.
    assert results["epochs_per_cell"] == 2
    assert results["transformers"] == 1
    assert results["old_differs"]
    assert results["H_new_is_new_world"] and results["P_new_is_new_world"]
    assert results["hooks_after_unload"] == 0
    text = results["explanation"]
    assert "last re-trace, at epoch" in text and "global 'g' of module '__main__'" in text
    assert re.search(r"\[new definition at notebook cell \[5\], line 1\]", text), text
    assert "origin: f (notebook cell [" in text


def test_import_registers_automatically_and_auto_advance_false_opts_out():
    results = run_shell("""
        run(PREPARE)  # `import jaxworld` inside the running shell
        results["hooks_after_import"] = hooks()
        run(REDEFINE)
        run(CALL)
        results["auto_new_world"] = close("H_new", "expected") and close("P_new", "expected")

        run("jaxworld.auto_advance(False)")
        results["hooks_after_opt_out"] = hooks() + transformers()
        run(PREPARE)
        # PREPARE's traces found the first half's records changed (g was redefined) and advanced
        # (issue #12): compile both operators again in the world that is now current.
        run("H_old, P_old = H(x), P(x)")
        epoch = shell.user_ns["jaxworld"].epoch()
        run(REDEFINE)
        run(CALL)
        results["epoch_unchanged"] = shell.user_ns["jaxworld"].epoch() == epoch
        results["still_old_world"] = close("H_new", "H_old") and close("P_new", "P_old")
        run("jaxworld.advance()")
        run(CALL)
        results["new_after_manual_advance"] = close("H_new", "expected")
        run("jaxworld.auto_advance(True); jaxworld.auto_advance(True)")
        results["hooks_after_opt_in"] = hooks()
    """)
    assert results["hooks_after_import"] == 1
    assert results["auto_new_world"]
    assert results["hooks_after_opt_out"] == 0
    assert results["epoch_unchanged"] and results["still_old_world"]
    assert results["new_after_manual_advance"]
    assert results["hooks_after_opt_in"] == 1


def test_environment_variable_opts_out():
    results = run_shell("""
        run(PREPARE)
        results["hooks_after_import"] = hooks()
        epoch = shell.user_ns["jaxworld"].epoch()
        run(REDEFINE)
        run(CALL)
        results["epoch_unchanged"] = shell.user_ns["jaxworld"].epoch() == epoch
        results["still_old_world"] = close("H_new", "H_old")
    """, JAXWORLD_NO_AUTO_ADVANCE="1")
    assert results["hooks_after_import"] == 0
    assert results["epoch_unchanged"] and results["still_old_world"]


def test_outside_ipython_nothing_is_registered_and_ipython_is_not_imported():
    script = ("import sys, jaxworld\n"
              "print(jaxworld.auto_advance(False), jaxworld.auto_advance(True), "
              "'IPython' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "False"]


def test_a_redefinition_and_a_call_in_the_same_cell_give_the_new_world():
    # Issue #12, item 3: each top-level statement runs in the latest world (as in Julia). main: the
    # prepared Hessian returned the old answer until the next cell.
    results = run_shell("""
        run(PREPARE)
        run(REDEFINE + CALL)  # one cell: def g, then the calls
        results["same_cell"] = close("H_new", "expected") and close("P_new", "expected")
        results["old_differs"] = not close("H_old", "expected")
        # The last expression of a cell is still displayed (nothing is inserted after it).
        run("def g(x):\\n    return jnp.tanh(x)\\nH(x)")
        run("expected = jax.jit(jax.hessian(lambda y: f(y)))(x)")
        results["displayed_is_new"] = bool(shell.user_ns["jnp"].allclose(
            shell.user_ns["Out"][max(shell.user_ns["Out"])], shell.user_ns["expected"],
            rtol=2e-5, atol=2e-5))
        # A statement that changes nothing advances nothing.
        epoch = shell.user_ns["jaxworld"].epoch()
        run("y = 1\\nz = y + 1")
        results["epochs_for_unrelated"] = shell.user_ns["jaxworld"].epoch() - epoch
    """)
    assert results["old_differs"] and results["same_cell"]
    assert results["displayed_is_new"]
    assert results["epochs_for_unrelated"] == 1  # the cell's own advance only


def test_per_statement_opt_out_keeps_the_per_cell_advance():
    results = run_shell("""
        run(PREPARE)
        run("jaxworld.auto_advance(per_statement=False)")
        results["hooks"], results["transformers"] = hooks(), transformers()
        run(REDEFINE + CALL)
        results["same_cell_is_old"] = close("H_new", "H_old")
        run(CALL)
        results["next_cell_is_new"] = close("H_new", "expected")
    """)
    assert (results["hooks"], results["transformers"]) == (1, 0)
    assert results["same_cell_is_old"] and results["next_cell_is_new"]


def test_statement_advance_environment_opt_out():
    results = run_shell("""
        run(PREPARE)
        results["hooks"], results["transformers"] = hooks(), transformers()
    """, JAXWORLD_NO_STATEMENT_ADVANCE="1")
    assert (results["hooks"], results["transformers"]) == (1, 0)


def test_autoreload_then_call_in_the_next_cell_gives_the_new_world(tmp_path):
    # main: `%autoreload 2` reloads in `pre_run_cell`, after the previous cell's advance, so the
    # first cell after the file edit got the old Hessian. Now the cell starts with a records check,
    # which runs after the reload.
    module = tmp_path / "jw_helpers.py"
    module.write_text("import jax.numpy as jnp\ndef g(x):\n    return jnp.sin(x)\n")
    results = run_shell(f"""
        import sys
        sys.dont_write_bytecode = True
        sys.path.insert(0, {str(tmp_path)!r})
        run("%load_ext autoreload")
        run("%autoreload 2")
        run("import jax, jax.numpy as jnp, jaxworld, jw_helpers")
        run("def f(x):\\n    return jnp.sum(jw_helpers.g(x) ** 2)")
        run("H = jaxworld.hessian(f); x = jnp.array([0.3, -0.5, 1.2]); H_old = H(x)")
        run("import os, pathlib; p = pathlib.Path({str(module)!r}); "
            "p.write_text(p.read_text().replace('jnp.sin(x)', '3.0 * jnp.cos(x)')); "
            "st = os.stat(p); os.utime(p, (st.st_atime + 10, st.st_mtime + 10))")
        run("H_new = H(x)")  # the first cell after the edit
        run("expected = jax.hessian(lambda y: jnp.sum((3.0 * jnp.cos(y)) ** 2))(x)")
        results["new"] = close("H_new", "expected")
        results["old_differs"] = not close("H_old", "expected")
    """)
    assert results["old_differs"] and results["new"]
