"""Tests for jaxworld._deps: dependency records of traced callables.

Notebook cells are simulated by exec-ing source into one shared namespace dict,
compiled with an IPython-like filename so `Change.where` can say "notebook cell".
"""

from __future__ import annotations

import functools
import gc
import importlib
import itertools
import os
import sys
import textwrap
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld
from jaxworld._deps import Change, DependencyRecord

from . import helpers

_cell_counter = itertools.count(1)


def run_cell(ns: dict, source: str) -> dict:
    """Execute `source` in `ns` the way a notebook cell would."""
    n = next(_cell_counter)
    return helpers.notebook(source, ns, filename=f"<ipython-input-{n}-deadbeef>")


def notebook(source: str, **extra) -> dict:
    return run_cell({"jnp": jnp, "np": np, "jax": jax, **extra}, source)


def whats(changes: list[Change]) -> str:
    return "\n".join(c.what for c in changes)


# ---------------------------------------------------------------------------
# Baseline

def test_unchanged_record_holds_and_ignores_unrelated_globals():
    ns = notebook("""
        scale = 2.0
        def helper(x):
            return jnp.sin(x) * scale
        def f(x):
            return helper(x) + 1
        unrelated = 1
        def other(x):
            return x
    """)
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    assert rec.changes() == []  # repeatable
    ns["unrelated"] = 2
    run_cell(ns, "def other(x):\n    return x + 1\n")
    ns["brand_new_global"] = 3
    assert rec.changes() == []
    assert len(rec) > 0
    lines = rec.describe()
    assert any("global 'helper'" in line and "function helper" in line for line in lines)
    assert any("global 'scale'" in line and "2.0" in line for line in lines)


def test_helper_redefined_reports_path_and_notebook_cell():
    ns = notebook("""
        def helper(x):
            return x + 1
        def f(x):
            return helper(x) * 2
    """)
    rec = DependencyRecord.capture(ns["f"])
    run_cell(ns, "def helper(x):\n    return x + 2\n")
    changes = rec.changes()
    assert len(changes) == 1  # what lies under the changed helper is not repeated
    (change,) = changes
    assert "'helper'" in change.what and "read by f" in change.what
    assert change.old.startswith("function helper") and change.new.startswith("function helper")
    assert change.where == "notebook cell"


def test_helper_two_calls_deep_redefined():
    ns = notebook("""
        def g(x):
            return x * 3
        def helper(x):
            return g(x) + 1
        def f(x):
            return helper(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    run_cell(ns, "def g(x):\n    return x * 4\n")
    changes = rec.changes()
    assert len(changes) == 1
    assert "global 'g'" in changes[0].what
    assert "f -> helper" in changes[0].what


def test_helper_defined_in_a_file_reports_file_and_line(tmp_path):
    code = compile("def helper(x):\n    return x\n", str(tmp_path / "mylib.py"), "exec")
    ns = notebook("def f(x):\n    return helper(x)\n")
    exec(code, ns)
    rec = DependencyRecord.capture(ns["f"])
    code2 = compile("\n\ndef helper(x):\n    return -x\n", str(tmp_path / "mylib.py"), "exec")
    exec(code2, ns)
    (change,) = rec.changes()
    assert change.where == "mylib.py:3"


def test_global_float_rebound():
    ns = notebook("""
        scale = 1.5
        def f(x):
            return x * scale
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["scale"] = 1.5  # same value: not a change
    assert rec.changes() == []
    ns["scale"] = 2.5
    (change,) = rec.changes()
    assert "global 'scale'" in change.what
    assert (change.old, change.new, change.where) == ("1.5", "2.5", None)


def test_global_int_to_equal_float_is_a_change():
    ns = notebook("n = 1\ndef f(x):\n    return x * n\n")
    rec = DependencyRecord.capture(ns["f"])
    ns["n"] = 1.0  # equal but a different type: traces differ (weak types)
    assert "global 'n'" in whats(rec.changes())


def test_global_jax_array_rebound():
    ns = notebook("w = jnp.ones(3)\ndef f(x):\n    return x * w\n")
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    ns["w"] = jnp.ones(3)  # equal contents, new array: identity tracked
    (change,) = rec.changes()
    assert "global 'w'" in change.what
    assert "jax.Array float32[3]" in change.new


def test_global_numpy_array_mutated_in_place():
    ns = notebook("table = np.arange(4.0)\ndef f(x):\n    return x + table\n")
    rec = DependencyRecord.capture(ns["f"])
    ns["table"][2] = 100.0
    (change,) = rec.changes()
    assert "global 'table'" in change.what
    assert "ndarray float64[4]" in change.old and change.old != change.new


def test_numpy_array_in_a_global_list_mutated():
    ns = notebook("params = [np.zeros(2), 3]\ndef f(x):\n    return x + params[0] * params[1]\n")
    rec = DependencyRecord.capture(ns["f"])
    ns["params"][0][1] = 1.0
    assert "global 'params'" in whats(rec.changes())


def test_global_list_and_dict_mutated():
    ns = notebook("cfg = {'depth': 2, 'sizes': [1, 2]}\ndef f(x):\n    return x * cfg['depth']\n")
    rec = DependencyRecord.capture(ns["f"])
    ns["cfg"]["sizes"].append(3)
    assert "global 'cfg'" in whats(rec.changes())


def test_global_appearing_later_shadows_builtin():
    ns = notebook("def f(x):\n    return abs(x) + missing_helper_flag\n")
    rec = DependencyRecord.capture(ns["f"])
    ns["abs"] = lambda x: x
    assert "global 'abs'" in whats(rec.changes())
    del ns["abs"]
    assert rec.changes() == []
    ns["missing_helper_flag"] = 1
    assert "global 'missing_helper_flag'" in whats(rec.changes())


def test_global_deleted():
    ns = notebook("k = 3\ndef f(x):\n    return x * k\n")
    rec = DependencyRecord.capture(ns["f"])
    del ns["k"]
    (change,) = rec.changes()
    assert "global 'k'" in change.what and change.new == "<not defined>"


# ---------------------------------------------------------------------------
# Function internals

def test_closure_cell_changed_via_nonlocal():
    ns = notebook("""
        def make():
            factor = 2.0
            def f(x):
                return x * factor
            def set_factor(v):
                nonlocal factor
                factor = v
            return f, set_factor
        f, set_factor = make()
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["set_factor"](2.0)
    assert rec.changes() == []
    ns["set_factor"](3.0)
    (change,) = rec.changes()
    assert "closure variable 'factor'" in change.what and change.new == "3.0"


def test_defaults_and_kwdefaults_changed():
    ns = notebook("def f(x, power=2, *, shift=0.0):\n    return x ** power + shift\n")
    f = ns["f"]
    rec = DependencyRecord.capture(f)
    f.__defaults__ = (3,)
    assert "default arguments of f" in whats(rec.changes())
    f.__defaults__ = (2,)
    assert rec.changes() == []
    f.__kwdefaults__ = {"shift": 1.0}
    assert "keyword defaults of f" in whats(rec.changes())


def test_helper_code_swapped():
    ns = notebook("""
        def helper(x):
            return x + 1
        def replacement(x):
            return x - 1
        def f(x):
            return helper(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["helper"].__code__ = ns["replacement"].__code__
    (change,) = rec.changes()
    assert "code of f -> helper" in change.what
    assert change.where == "notebook cell"


def test_globals_read_inside_lambdas_inner_functions_and_comprehensions():
    ns = notebook("""
        a, b, c = 1, 2, 3
        def f(x):
            g = lambda y: y + a
            def inner(y):
                return y * b
            return sum(g(v) + inner(v) + c for v in [x])
    """)
    rec = DependencyRecord.capture(ns["f"])
    for name in ("a", "b", "c"):
        old = ns[name]
        ns[name] = old + 10
        assert f"global '{name}'" in whats(rec.changes())
        ns[name] = old
    assert rec.changes() == []


def test_recursive_and_mutually_recursive_functions_terminate():
    ns = notebook("""
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        def is_even(n):
            return True if n == 0 else is_odd(n - 1)
        def is_odd(n):
            return False if n == 0 else is_even(n - 1)
        def f(x):
            return fact(3) * x if is_even(4) else x
    """)
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    run_cell(ns, "def is_odd(n):\n    return n % 2 == 1\n")
    assert "global 'is_odd'" in whats(rec.changes())


def test_self_referential_containers_terminate():
    ns = notebook("box = []\nbox.append(box)\nreg = {}\nreg['me'] = reg\n"
                  "def f(x):\n    return box, reg\n")
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    ns["reg"]["new"] = 1
    assert "global 'reg'" in whats(rec.changes())


def test_deeply_nested_structures_do_not_crash_and_are_conservative():
    ns = notebook("""
        class Node:
            def __init__(self, value, nxt):
                self.value, self.next = value, nxt
        chain = None
        for i in range(40):
            chain = Node(float(i), chain)
        deep = []
        for _ in range(2000):
            deep = [deep]
        def f(x):
            return x + chain.value
        def g(x):
            return x, deep
    """)
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    node = ns["chain"]
    while node.next is not None:
        node = node.next
    node.value = -1.0  # 40 objects down: still verified precisely
    assert "field 'value'" in whats(rec.changes())
    assert rec.verifiable
    rec_deep = DependencyRecord.capture(ns["g"])  # too deep to verify: always reported
    assert not rec_deep.verifiable
    assert "global 'deep'" in whats(rec_deep.changes())


def test_two_functions_only_the_affected_record_changes():
    ns = notebook("""
        def helper_a(x):
            return x + 1
        def helper_b(x):
            return x + 2
        def fa(x):
            return helper_a(x)
        def fb(x):
            return helper_b(x)
    """)
    rec_a = DependencyRecord.capture(ns["fa"])
    rec_b = DependencyRecord.capture(ns["fb"])
    run_cell(ns, "def helper_a(x):\n    return x + 10\n")
    assert "global 'helper_a'" in whats(rec_a.changes())
    assert rec_b.changes() == []


def test_user_decorator_wrapped_function_is_walked():
    ns = notebook("""
        import functools
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return fn(*args)
            return wrapper
        k = 1
        @deco
        def f(x):
            return x * k
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["k"] = 2
    assert "global 'k'" in whats(rec.changes())


# ---------------------------------------------------------------------------
# Objects, methods, classes

def test_method_replaced_on_class_of_global_object():
    ns = notebook("""
        class Scaler:
            def __init__(self, s):
                self.s = s
            def apply(self, x):
                return x * self.s
        scaler = Scaler(2.0)
        def f(x):
            return scaler.apply(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    run_cell(ns, "def new_apply(self, x):\n    return x + self.s\nScaler.apply = new_apply\n")
    changes = rec.changes()
    assert "attribute 'apply' of class 'Scaler'" in whats(changes)
    assert changes[0].where == "notebook cell"


def test_instance_field_of_global_object_changed():
    ns = notebook("""
        class Scaler:
            def __init__(self, s):
                self.s = s
            def apply(self, x):
                return x * self.s
        scaler = Scaler(2.0)
        def f(x):
            return scaler.apply(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["scaler"].s = 3.0
    (change,) = rec.changes()
    assert "field 's'" in change.what and "global 'scaler'" in change.what


def test_global_read_by_method_of_global_object():
    ns = notebook("""
        offset = 1.0
        class M:
            def apply(self, x):
                return x + offset
        m = M()
        def f(x):
            return m.apply(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["offset"] = 2.0
    assert "global 'offset'" in whats(rec.changes())


def test_callable_object_origin():
    ns = notebook("""
        class Model:
            def __init__(self):
                self.weight = np.ones(3)
                self.bias = 0.5
            def __call__(self, x):
                return x * self.weight + self.bias
        model = Model()
    """)
    model = ns["model"]
    rec = DependencyRecord.capture(model)
    assert rec.changes() == []
    model.weight[0] = 7.0
    assert "field 'weight'" in whats(rec.changes())
    model.weight[0] = 1.0
    assert rec.changes() == []
    model.bias = 0.25
    assert "field 'bias'" in whats(rec.changes())
    model.bias = 0.5
    run_cell(ns, "def call2(self, x):\n    return x\nModel.__call__ = call2\n")
    assert "attribute '__call__' of class 'Model'" in whats(rec.changes())


def test_slots_object_field_changed():
    ns = notebook("""
        class P:
            __slots__ = ("k",)
            def __init__(self):
                self.k = 1
        p = P()
        def f(x):
            return x * p.k
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["p"].k = 2
    assert "slot 'k'" in whats(rec.changes())


def test_bound_method_origin():
    ns = notebook("""
        class Layer:
            def __init__(self):
                self.scale = 2.0
            def forward(self, x):
                return x * self.scale
        layer = Layer()
    """)
    layer = ns["layer"]
    rec = DependencyRecord.capture(layer.forward)  # a temporary bound method: held weakly
    assert rec.changes() == []
    layer.scale = 5.0
    assert "field 'scale'" in whats(rec.changes())


def test_global_class_method_replaced():
    ns = notebook("""
        class Ops:
            @staticmethod
            def act(x):
                return x
        def f(x):
            return Ops.act(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    run_cell(ns, "Ops.act = staticmethod(lambda x: -x)\n")
    assert "attribute 'act' of class 'Ops'" in whats(rec.changes())


def test_origin_garbage_collected():
    ns = notebook("def f(x):\n    return x\n")
    rec = DependencyRecord.capture(ns["f"])
    del ns["f"]
    gc.collect()
    (change,) = rec.changes()
    assert change.new == "<garbage collected>"


def test_strong_origin_survives():
    rec = DependencyRecord.capture(lambda x: x + 1, strong=True)
    gc.collect()
    assert rec.changes() == []


# ---------------------------------------------------------------------------
# functools.partial, JAX wrappers

def test_global_partial_rebound_and_partial_args():
    ns = notebook("""
        import functools
        def base(x, k):
            return x * k
        p = functools.partial(base, k=2)
        def f(x):
            return p(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    run_cell(ns, "p = functools.partial(base, k=2)\n")  # rebound, equal arguments
    assert "global 'p'" in whats(rec.changes())

    rec = DependencyRecord.capture(ns["f"])
    run_cell(ns, "def base(x, k):\n    return x + k\n")  # p still holds the old base
    assert rec.changes() == []


def test_partial_origin_args_snapshotted():
    ns = notebook("def base(x, table):\n    return x + table\n")
    table = np.zeros(2)
    p = functools.partial(ns["base"], table=table)
    rec = DependencyRecord.capture(p)
    table[0] = 1.0
    assert "keyword arguments of" in whats(rec.changes())


def test_custom_jvp_defjvp_called_again():
    ns = notebook("""
        @jax.custom_jvp
        def safe(x):
            return jnp.log1p(x)
        @safe.defjvp
        def safe_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            return safe(x), t / (1 + x)
        def f(x):
            return safe(x) * 2
    """)
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    run_cell(ns, """
        def other_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            return safe(x), t
        safe.defjvp(other_jvp)
    """)
    changes = rec.changes()
    assert "field 'jvp' of global 'safe'" in whats(changes)
    assert changes[0].where == "notebook cell"


def test_custom_vjp_rules_and_inner_fun():
    ns = notebook("""
        k = 1.0
        @jax.custom_vjp
        def h(x):
            return x * k
        def h_fwd(x):
            return h(x), x
        def h_bwd(res, g):
            return (g,)
        h.defvjp(h_fwd, h_bwd)
        def f(x):
            return h(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["k"] = 2.0  # read by the custom_vjp's own fun
    assert "global 'k'" in whats(rec.changes())
    ns["k"] = 1.0
    run_cell(ns, "def h_bwd2(res, g):\n    return (2 * g,)\nh.defvjp(h_fwd, h_bwd2)\n")
    assert "field 'bwd'" in whats(rec.changes())


def test_jit_wrapped_user_function_is_walked():
    ns = notebook("""
        k = 3.0
        def body(x):
            return x * k
        jbody = jax.jit(body)
        vbody = jax.vmap(body)
        def f(x):
            return jbody(x) + vbody(x)
    """)
    rec = DependencyRecord.capture(ns["f"])
    ns["k"] = 4.0
    changes = whats(rec.changes())
    assert "global 'k'" in changes and "body" in changes


def test_jit_origin_is_walked():
    ns = notebook("k = 3.0\ndef body(x):\n    return x * k\n")
    jitted = jax.jit(ns["body"])
    rec = DependencyRecord.capture(jitted)
    ns["k"] = 1.0
    assert "global 'k'" in whats(rec.changes())


# ---------------------------------------------------------------------------
# Modules

def test_module_attribute_monkeypatched():
    helpers = types.ModuleType("fake_helpers")
    exec("def act(x):\n    return x\n", helpers.__dict__)
    ns = notebook("def f(x):\n    return fake_helpers.act(x)\n", fake_helpers=helpers)
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []
    helpers.act = lambda x: -x
    (change,) = rec.changes()
    assert "attribute 'act'" in change.what and "fake_helpers" in change.what


def test_library_module_attribute_monkeypatched(monkeypatch):
    ns = notebook("def f(x):\n    return jnp.tanh(x)\n")
    rec = DependencyRecord.capture(ns["f"])
    monkeypatch.setattr(jnp, "tanh", lambda x: x)
    assert "attribute 'tanh' of global 'jnp'" in whats(rec.changes())
    monkeypatch.undo()
    assert rec.changes() == []


def test_importlib_reload_of_changed_helper_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc on fast rewrites
    modname = "jw_deps_reload_helper"
    path = tmp_path / f"{modname}.py"
    path.write_text("FACTOR = 2\n\ndef g(x):\n    return x * FACTOR\n")
    importlib.invalidate_caches()
    try:
        mod = importlib.import_module(modname)
        ns = notebook("def f(x):\n    return helper_mod.g(x)\n", helper_mod=mod)
        rec = DependencyRecord.capture(ns["f"])
        assert rec.changes() == []
        path.write_text("FACTOR = 2\n\n\ndef g(x):\n    return x * FACTOR + 1\n")
        importlib.reload(mod)
        changes = rec.changes()
        assert "attribute 'g' of global 'helper_mod'" in whats(changes)
        assert changes[0].where == f"{modname}.py:4"

        # A global of the helper module read by g is tracked too.
        rec = DependencyRecord.capture(ns["f"])
        mod.FACTOR = 3
        assert "global 'FACTOR' of module 'jw_deps_reload_helper'" in whats(rec.changes())
    finally:
        sys.modules.pop(modname, None)


def test_library_functions_are_not_walked():
    ns = notebook("def f(x):\n    return jnp.sum(jnp.sin(x))\n")
    rec = DependencyRecord.capture(ns["f"])
    # No entry reaches into jax's own globals.
    assert not any("read by f -> " in line for line in rec.describe())


def test_class_decision_follows_a_staticmethod_replaced_again_and_again():
    # A class is decided once and the decision kept (without holding the class) while its
    # attribute values stay the same. A replaced staticmethod is freed and the next one can take
    # its id, so what a staticmethod wraps is compared as well.
    from jaxworld._deps._classify import is_user_class

    lib: dict = {}
    fake = os.path.join(os.path.dirname(np.__file__), "_jaxworld_test_library.py")
    exec(compile("class Lib:\n    @staticmethod\n    def helper(x):\n        return x\n"
                 "def lib_helper(x):\n    return x\n", fake, "exec"), lib)
    Lib, mine = lib["Lib"], notebook("def mine(x):\n    return 2 * x\n")["mine"]
    assert not is_user_class(Lib)
    reused = 0
    for i in range(100):
        user = i % 2 == 0
        before = id(Lib.__dict__["helper"])
        del Lib.helper  # freed: the next staticmethod is likely to take its id
        Lib.helper = staticmethod(mine if user else lib["lib_helper"])
        reused += id(Lib.__dict__["helper"]) == before
        assert is_user_class(Lib) is user
    assert reused  # ids were reused, so the test checks what it means to


def test_a_module_getattr_is_never_run_to_classify_a_class(monkeypatch):
    # Whether a class lives as long as its module is read from the module's dict: a lazy module
    # `__getattr__` (deprecation warnings, imports on demand) must not run during a walk.
    lazy = types.ModuleType("jaxworld_test_lazy_module")
    lazy.__file__ = os.path.join(os.path.dirname(np.__file__), "_jaxworld_test_lazy.py")

    def module_getattr(name):
        raise RuntimeError(f"module __getattr__ ran for {name!r}")

    lazy.__getattr__ = module_getattr
    monkeypatch.setitem(sys.modules, lazy.__name__, lazy)
    Hidden = type("Hidden", (), {"__module__": lazy.__name__, "scale": 2.0})
    ns = notebook("""
        def f(x):
            return x * obj.scale
    """, obj=Hidden())
    rec = DependencyRecord.capture(ns["f"])
    assert rec.changes() == []


def test_jax_objects_are_not_walked_into_their_internals():
    ns = notebook("def f(x):\n"
                  "    return jax.nn.relu(x) + jax.tree_util.tree_structure(x).num_leaves\n")
    rec = DependencyRecord.capture(ns["f"])
    text = "\n".join(rec.describe())
    assert "_jit_info" not in text and "PyTreeDef" not in text and "nanobind" not in text
    assert "field 'jvp' of attribute 'relu'" in text  # the custom_jvp rule itself is recorded
    assert rec.changes() == []


def test_shared_memo_hashes_shared_array_once_and_still_detects():
    table = np.arange(6.0)
    ns = notebook("def f(x):\n    return x + table\ndef g(x):\n    return x * table\n", table=table)
    rec_f, rec_g = DependencyRecord.capture(ns["f"]), DependencyRecord.capture(ns["g"])
    memo: dict = {}
    assert rec_f.changes(memo=memo) == [] and rec_g.changes(memo=memo) == []
    assert len(memo) == 1
    table[0] = -1.0
    memo = {}  # a fresh memo per advance()
    assert "global 'table'" in whats(rec_f.changes(memo=memo))
    assert "global 'table'" in whats(rec_g.changes(memo=memo))


# ---------------------------------------------------------------------------
# JAX configuration

def test_flags_outside_jax_jit_cache_key_are_recorded():
    # x64, promotion, matmul precision...: in the entry key of `jaxworld.wrap`, like `jax.jit`.
    # The PRNG implementation changes traces but JAX leaves it out of its key: the record has it.
    ns = notebook("def f(x):\n    return x + 1\n")
    rec = DependencyRecord.capture(ns["f"])
    before = jax.config.jax_default_prng_impl
    try:
        jax.config.update("jax_default_prng_impl", "rbg")
        changes = rec.changes()
        assert [c.what for c in changes] == ["JAX configuration"]
        assert "jax_default_prng_impl" in changes[0].old and "rbg" in changes[0].new
    finally:
        jax.config.update("jax_default_prng_impl", before)
    assert rec.changes() == []


def test_x64_is_in_the_entry_key_not_the_record():
    ns = notebook("def f(x):\n    return x + 1\n")
    rec = DependencyRecord.capture(ns["f"])
    with jax.enable_x64(not jax.config.jax_enable_x64):
        assert rec.changes() == []  # an advance inside a context re-traces nothing


def test_entry_keys_are_unique_in_a_busy_record():
    from unittest import mock

    ns = notebook("""
        import functools
        class field:  # a class named like an internal key label
            resolve = 1
            def __call__(self, x):
                return x
        class Sub(field):
            __slots__ = ()
        obj = Sub()
        table = {"a": np.ones(2), 1: [field, obj], ("t",): {"nested": obj}}
        p = functools.partial(obj, 1)
        weird = mock.MagicMock()
        def f(x, k=obj):
            return obj(x) + table["a"] + p() + weird.anything + Sub.resolve
    """, mock=mock)
    rec = DependencyRecord.capture(ns["f"])
    keys = [entry.key for entry in rec._entries]
    assert len(keys) == len(set(keys))
    assert rec.changes() == []
    ns["table"][("t",)]["nested"] = None
    assert "global 'table'" in whats(rec.changes())


def test_describe_lines_are_strings():
    ns = notebook("c = 1\ndef f(x):\n    return x + c + len([x])\n")
    rec = DependencyRecord.capture(ns["f"])
    lines = rec.describe()
    assert all(isinstance(line, str) for line in lines)
    assert any(line.startswith("builtins:") and "len" in line for line in lines)
    assert "entries" in repr(rec)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


# ---------------------------------------------------------------------------
# Guards: the fast "unchanged" (every answer they give is also checked against a
# full walk in the test suite, tests/conftest.py)

_GUARDED_SOURCES = {
    "helpers and globals": """
        scale = 2.0
        def helper(x):
            return jnp.sin(x) * scale
        def f(x):
            return helper(x) + jnp.sum(x)
    """,
    "closure cell and defaults": """
        def make(k):
            def f(x, p=3.0, *, q=(1, [2.0])):
                return x * k * p
            return f
        f = make(4.0)
    """,
    "containers and a numpy array": """
        table = {"a": [1.0, 2.0], "b": (3.0, np.arange(3.0))}
        weights = np.ones(4)
        def f(x):
            return x * table["a"][0] + weights.sum()
    """,
    "callable object of a user class": """
        class Model:
            __slots__ = ("w", "__dict__")
            def __init__(self):
                self.w = 2.0
                self.bias = 1.0
            def act(self, x):
                return jnp.tanh(x)
            def __call__(self, x):
                return self.act(x) * self.w + self.bias
        f = Model()
    """,
    "partial, jit-wrapped and custom_jvp helpers": """
        import functools
        @jax.custom_jvp
        def soft(x):
            return jnp.log1p(jnp.exp(x))
        soft.defjvp(lambda p, t: (soft(p[0]), t[0] * jax.nn.sigmoid(p[0])))
        jitted = jax.jit(lambda x: x * 2.0)
        scaled = functools.partial(jnp.multiply, 3.0)
        def f(x):
            return soft(jitted(scaled(x)))
    """,
}


@pytest.mark.parametrize("source", list(_GUARDED_SOURCES), ids=list(_GUARDED_SOURCES))
def test_guards_hold_while_nothing_changes(source):
    ns = notebook(_GUARDED_SOURCES[source])
    rec = DependencyRecord.capture(ns["f"])
    assert rec._guards is not None, "this record should be guardable"
    assert rec._guards_hold()
    assert rec.changes() == []
    assert rec._guards_hold()


def test_guards_fail_on_a_change_and_the_walk_decides():
    ns = notebook(_GUARDED_SOURCES["helpers and globals"])
    rec = DependencyRecord.capture(ns["f"])
    ns["scale"] = float("2.0")  # an equal value bound anew: no change, but a new object
    ns["scale"] = 2.0 + 0.0 * len(ns)
    assert not rec._guards_hold()
    assert rec.changes() == []
    assert rec._guards_hold()  # re-armed from that walk
    ns["scale"] = 3.0
    assert not rec._guards_hold()
    assert "scale" in whats(rec.changes())


def test_guards_see_in_place_mutation_of_containers_and_arrays():
    ns = notebook(_GUARDED_SOURCES["containers and a numpy array"])
    rec = DependencyRecord.capture(ns["f"])
    ns["table"]["b"][1][0] = 5.0  # inside a tuple inside a dict
    assert not rec._guards_hold()
    assert rec.changes()
    rec = DependencyRecord.capture(ns["f"])
    ns["table"]["a"].append(4.0)
    assert not rec._guards_hold()
    assert rec.changes()
    rec = DependencyRecord.capture(ns["f"])
    ns["weights"][0] = 2.0
    assert not rec._guards_hold()
    assert rec.changes()


def test_guards_see_methods_slots_and_class_changes():
    ns = notebook(_GUARDED_SOURCES["callable object of a user class"])
    model = ns["f"]
    for mutate in (lambda: setattr(model, "w", 5.0),
                   lambda: setattr(model, "bias", 5.0),
                   lambda: setattr(type(model), "act", lambda self, x: x),
                   lambda: setattr(model, "extra", 1)):
        rec = DependencyRecord.capture(model)
        assert rec._guards_hold()
        mutate()
        assert not rec._guards_hold()
        assert rec.changes()


@pytest.mark.parametrize("owner", ["the class", "a base class"])
def test_guards_see_a_library_class_define_a_name_user_code_reads(owner, monkeypatch):
    # The names user code reads are looked up along a library object's class MRO; the ones found
    # nowhere share one guard. Defining one of them later (a data descriptor wins over the
    # instance dict) changes what the code reads. On a base class this was missed: the attribute
    # is user code, and user classes' attributes were taken as recorded wholesale, which they are
    # only when the object's own class is a user class.
    import logging

    ns = notebook("""
        log = logging.getLogger("jaxworld.test.level")
        log.setLevel(10)
        def f(x):
            return x * log.level
    """, logging=logging)
    rec = DependencyRecord.capture(ns["f"])
    assert rec._guards_hold()
    monkeypatch.setattr(logging.Logger, "unrelated_name", 1, raising=False)
    assert rec.changes() == []  # a name no user code reads: no change
    klass = logging.Logger if owner == "the class" else logging.Filterer
    monkeypatch.setattr(klass, "level", property(lambda self: 99), raising=False)
    assert ns["log"].level == 99
    assert not rec._guards_hold()
    assert rec.changes()  # the class (now a user class) or the attribute on its base


def test_guards_are_disarmed_when_an_object_they_compare_dies():
    ns = notebook(_GUARDED_SOURCES["helpers and globals"])
    rec = DependencyRecord.capture(ns["f"])
    assert rec._guards_hold()
    del ns["helper"]  # the only reference: its id could now be reused by a new object
    gc.collect()
    assert not rec._guards.alive()
    assert not rec._guards_hold()
    assert "helper" in whats(rec.changes())


# ---------------------------------------------------------------------------
# Issue #11: what the record reaches beyond the origin's own names

def test_sites_list_user_places_and_rebind_them():
    ns = notebook("""
        SCALE = 2.0
        W = np.ones(3)
        def act(z):
            return jnp.tanh(z) * SCALE
        class Layer:
            def __init__(self):
                self.b = 0.5
            def __call__(self, z):
                return act(z) + self.b
        layer = Layer()
        def f(x):
            return jnp.sum(layer(x) * W)
    """)
    rec = DependencyRecord.capture(ns["f"])
    sites = {(s.name, s.kind) for s in rec.sites()}
    assert {("SCALE", "number"), ("W", "array"), ("act", "function"), ("__call__", "method"),
            ("b", "number")} <= sites
    (scale,) = [s for s in rec.sites() if s.name == "SCALE"]
    scale.set(3.0)
    assert ns["SCALE"] == 3.0
    assert "global 'SCALE'" in whats(rec.changes())


def _library_module(tmp_path, name: str, source: str) -> types.ModuleType:
    """A module that jaxworld classifies as library code (its file lies inside JAX's package)."""
    filename = os.path.join(os.path.dirname(jax.__file__), f"_jaxworld_test_{name}.py")
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(textwrap.dedent(source), filename, "exec"), module.__dict__)
    return module


def test_code_that_ran_but_is_unreachable_re_traces_at_every_advance(tmp_path):
    registry = _library_module(tmp_path, "registry", """
        _REGISTRY = {}
        def register(name, fn):
            _REGISTRY[name] = fn
        def lookup(name):
            return _REGISTRY[name]
    """)
    ns = notebook("""
        def act(z):
            return jnp.tanh(z)
        def f(x):
            return jnp.sum(registry.lookup("".join(["a", "ct"]))(x) ** 2)  # computed at run time
    """, registry=registry)
    registry.register("act", ns["act"])
    wf = jaxworld.wrap(ns["f"])
    x = jnp.array([0.3, -0.2])
    np.testing.assert_allclose(wf(x), np.sum(np.tanh(x) ** 2), rtol=1e-6)
    (entry,) = wf._entries.values()
    assert entry.record.unreached and "act" in entry.record.unreached[0]
    assert any("re-traced at every advance" in line for line in entry.record.describe())
    # The registry is outside every record: only re-tracing at every advance can follow it.
    run_cell(ns, "def act(z):\n    return jnp.sin(z)\n")
    registry.register("act", ns["act"])
    jaxworld.advance()
    np.testing.assert_allclose(wf(x), np.sum(np.sin(x) ** 2), rtol=1e-6)


def test_without_the_check_of_the_code_that_ran_the_registry_pattern_is_stale(monkeypatch):
    monkeypatch.setattr(jaxworld._deps.settings, "reach", False)
    registry = _library_module(None, "registry2", """
        _REGISTRY = {}
        def lookup(name):
            return _REGISTRY[name]
    """)
    ns = notebook("""
        def act(z):
            return jnp.tanh(z)
        def f(x):
            return jnp.sum(registry.lookup("act")(x) ** 2)
    """, registry=registry)
    registry._REGISTRY["act"] = ns["act"]
    wf = jaxworld.wrap(ns["f"])
    x = jnp.array([0.3, -0.2])
    wf(x)
    run_cell(ns, "def act(z):\n    return jnp.sin(z)\n")
    registry._REGISTRY["act"] = ns["act"]
    jaxworld.advance()
    np.testing.assert_allclose(wf(x), np.sum(np.tanh(x) ** 2), rtol=1e-6)  # stale


# ---------------------------------------------------------------------------
# The walk `advance()` makes to find a change is the re-trace's record (`take_successor`)

_SUCCESSOR_CELL = """
    def helper(x):
        return jnp.sin(x) * 1.0
    def f(x):
        return jnp.sum(helper(x) ** 2)
"""


def _fresh_plain(ns: dict, x):
    return jax.jit(lambda v: ns["f"](v))(x)  # a new lambda: no JAX cache applies


def test_successor_record_is_what_a_capture_makes():
    ns = notebook(_SUCCESSOR_CELL)
    rec = DependencyRecord.capture(ns["f"])
    assert rec.take_successor() is None  # nothing was found changed yet
    run_cell(ns, "def helper(x):\n    return jnp.cos(x)\n")
    assert "'helper'" in whats(rec.changes())
    successor = rec.take_successor()
    fresh = DependencyRecord.capture(ns["f"])
    assert [e.key for e in successor._entries] == [e.key for e in fresh._entries]
    assert all(a.token == b.token for a, b in zip(successor._entries, fresh._entries,
                                                  strict=True))
    assert [str(e.text) for e in successor._entries] == [str(e.text) for e in fresh._entries]
    assert successor.changes() == []
    assert rec.take_successor() is None  # taken once
    run_cell(ns, "def helper(x):\n    return jnp.tan(x)\n")
    assert "'helper'" in whats(successor.changes())  # and it watches like a capture


def test_retrace_after_a_change_reuses_the_walk_of_advance(monkeypatch):
    ns = notebook(_SUCCESSOR_CELL)
    wf = jaxworld.wrap(ns["f"])
    x = jnp.linspace(0.1, 1.0, 3)
    jax.block_until_ready(wf(x))
    captures = []
    real = DependencyRecord.capture.__func__
    monkeypatch.setattr(DependencyRecord, "capture",
                        classmethod(lambda cls, *a, **k: captures.append(a) or real(cls, *a, **k)))
    run_cell(ns, "def helper(x):\n    return jnp.cos(x) * 3.0\n")
    jaxworld.advance()
    got = wf(x)
    np.testing.assert_allclose(got, _fresh_plain(ns, x), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(wf)(x), jax.grad(lambda v: ns["f"](v))(x), rtol=1e-6)
    assert captures == []  # the re-trace took the record advance() had walked


def test_change_between_the_advance_walk_and_the_retrace_is_seen(monkeypatch):
    ns = notebook(_SUCCESSOR_CELL)
    wf = jaxworld.wrap(ns["f"])
    x = jnp.linspace(0.1, 1.0, 3)
    hessian = jax.jit(jax.hessian(wf))
    jax.block_until_ready(hessian(x))
    run_cell(ns, "def helper(x):\n    return jnp.cos(x) * 3.0\n")
    jaxworld.advance()  # walks the world with cos * 3.0: the re-trace's record-to-be
    run_cell(ns, "def helper(x):\n    return x ** 3\n")  # then a change with no advance
    for name, ours, plain in [
        ("call", wf(x), _fresh_plain(ns, x)),
        ("hessian", hessian(x), jax.jit(jax.hessian(lambda v: ns["f"](v)))(x)),
    ]:
        np.testing.assert_allclose(ours, plain, rtol=1e-5, err_msg=name)
    assert jaxworld.explain(wf) is not None
    assert not any(e.record.changes() for e in wf._entries.values())
