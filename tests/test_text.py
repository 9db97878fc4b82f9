"""`jaxworld/_text.py`: the one home of aval formatting, cell locations and change descriptions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxworld import _text
from jaxworld._deps import Change


def test_short_aval_is_jax_short_form_and_str_otherwise():
    aval = jax.typeof(jnp.zeros((2, 3), jnp.float32))
    assert _text.short_aval(aval) == "f32[2,3]"
    assert _text.short_aval("not an aval") == "not an aval"


def test_cell_locations_name_the_cell_number_and_files_by_path():
    assert _text.is_notebook_cell("<ipython-input-7-0123abcd>")
    assert _text.is_notebook_cell("/tmp/ipykernel_123/456.py")
    assert not _text.is_notebook_cell("/home/me/lib.py")
    assert _text.notebook_cell("<ipython-input-7-0123abcd>") == "notebook cell [7]"
    assert _text.notebook_cell("/tmp/ipykernel_123/456.py") == "notebook cell"  # no shell here
    assert _text.notebook_cell("/home/me/lib.py") is None
    assert _text.location("<ipython-input-7-0123abcd>", 3) == "notebook cell [7], line 3"
    assert _text.location("/home/me/lib.py", 3) == "/home/me/lib.py:3"


def test_both_change_descriptions_give_the_cell_of_the_new_definition():
    cell = Change("global 'g' of f", "function g at lib.py:1",
                  "function g at <ipython-input-4-0123abcd>:2", "notebook cell")
    file = Change("global 'a' of f", "2.0", "5.0", "lib.py:9")
    unknown = Change("default of f", "(1.0,)", "(3.0,)", None)
    assert _text.describe_changes([cell, file, unknown]).splitlines() == [
        "  - global 'g' of f: function g at lib.py:1 -> function g at <ipython-input-4-0123abcd>:2"
        " (new definition at notebook cell [4], line 2)",
        "  - global 'a' of f: 2.0 -> 5.0 (new definition at lib.py:9)",
        "  - default of f: (1.0,) -> (3.0,)",
    ]
    assert _text.change_lines([cell], "  ") == [
        "  - global 'g' of f",
        "      old: function g at lib.py:1",
        "      new: function g at <ipython-input-4-0123abcd>:2"
        "  [new definition at notebook cell [4], line 2]",
    ]
