"""Differential fuzzing of jaxworld on *object patterns* against plain JAX (issue #11, item 6).

The sibling of `tests/fuzzing.py`. There, the traced function reaches its helper and globals
directly; here it reaches code and data through objects, arguments and libraries, which is where
issue #11 found stale answers. A *case* is

- a **pattern**: a small notebook (Python source) in which ``f`` reaches a global helper ``h``, a
  global float ``C``, a global NumPy matrix ``M`` and an object field ``scale`` through one of
  `PATTERNS` (a user class, a dataclass, a NamedTuple with methods, a pytree node class, an
  equinox Module, ``eqx.nn.Lambda``, a ``types.SimpleNamespace`` config under
  ``functools.partial``, a ``jax.tree_util.Partial``, a static callable argument, a config
  context, ...), passed as a global, a dynamic pytree argument or a static argument;
- one **change** (`CHANGES`), made like a notebook cell would make it: redefine ``h``, rebind ``C``,
  rebind the object's field, replace a method on its class, edit ``M`` in place, flip the x64 flag
  the calls run under, or switch the default PRNG implementation; then ``jaxworld.advance()``;
- a **stack** (`STACKS`: value, grad, hessian, jit of hessian, vmap of grad) of the wrapped
  function and a **preparation** (`PREPARATIONS`): ``jax.jit(stack(wrap(f)))`` built before the
  change, the prepared jaxworld operator (``jaxworld.hessian(f)``, ...) built before the change, or
  ``stack(wrap(f))`` called eagerly.

The oracle is plain JAX on a *freshly exec'd* copy of the notebook (new functions, classes and
objects; no JAX cache can answer for it) in the world the answer must come from, under one fresh
``jax.jit``; a disagreement is settled against the same plain JAX run eagerly, as in
`tests/fuzzing.py` (XLA fusion can change plain JAX's own compiled gradients). Every case also
checks that the change really changed plain JAX's answer, so a stale jaxworld cannot pass.

`Case.program()` is the case as a standalone Python program (paste it into a regression test or
a notebook); `repr(case)` is the `Case(...)` to paste into `tests/test_fuzz_objects.py`.

The long run (each chunk is one seeded hypothesis run; failures are collected, not shrunk)::

    python -m tests.fuzzing_objects --examples 10000 --seed 0 --fast-compile --log /tmp/objfuzz.log

prints each failing case's program, a table of failures per pattern and change, and a last line
``N passed, M failed, K uninformative`` (uninformative: the change did not move plain JAX's
answer beyond the tolerance, so the case could not tell stale from fresh; the generator keeps
old and new helpers and methods apart to make this rare).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import os
import random
import resource
import sys
import textwrap
import time
import traceback
import types
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import jaxworld

# -- equinox, or a pure-Python stand-in ---------------------------------------------------------


def _fallback_equinox() -> types.SimpleNamespace:
    """The part of equinox the patterns use, in pure Python: `Module`, `field`, `nn.Lambda`.

    A Module subclass becomes a frozen dataclass registered as a pytree whose fields marked
    ``field(static=True)`` are aux data, like `equinox.Module` (without its method wrapping).
    """

    def field(*, static: bool = False, **kwargs):
        return dataclasses.field(metadata={"static": static}, **kwargs)

    class Module:
        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            dataclasses.dataclass(frozen=True)(cls)
            fields = dataclasses.fields(cls)
            jax.tree_util.register_dataclass(
                cls, data_fields=[f.name for f in fields if not f.metadata.get("static")],
                meta_fields=[f.name for f in fields if f.metadata.get("static")])

    class Lambda(Module):
        fn: Callable = field(static=True)

        def __call__(self, x):
            return self.fn(x)

    return types.SimpleNamespace(Module=Module, field=field, fallback=True,
                                 nn=types.SimpleNamespace(Lambda=Lambda))


def load_equinox(fallback: bool = False):
    """Real equinox when importable (and `fallback` is false), else `_fallback_equinox()`."""
    if not fallback and os.environ.get("JAXWORLD_FUZZ_NO_EQUINOX") != "1":
        try:
            import equinox
            return equinox
        except ImportError:
            pass
    return _fallback_equinox()


# -- the grammar ----------------------------------------------------------------------------------

# Smooth elementwise pieces: every change moves values, gradients and Hessians at generic points.
_UNARY = ("jnp.sin({})", "jnp.tanh({})", "jnp.cos({})", "jax.nn.sigmoid({})",
          "jnp.exp(-{0} * {0})", "jnp.sqrt(1.0 + {0} * {0})", "(0.5 * {})", "({0} * {0})")

# The body of the object's method (or of the function the object holds), in `v` and a scale
# expression `{s}`: each reads the helper `h`, the float `C`, the matrix `M` and the scale, so
# each change of `CHANGES` reaches it.
BODIES = (
    "h(v) * {s} + C * jnp.tanh(M @ v)",
    "jnp.sin(h(v)) * {s} + C * (M @ v)",
    "h(M @ v) * {s} + C * jnp.cos(v)",
    "h(v) + {s} * C * jnp.tanh(M @ v)",
)
FINAL = "jnp.sum(jnp.sin(y) + 0.5 * y * y)"


@st.composite
def helper_bodies(draw) -> str:
    expr = "v"
    for _ in range(draw(st.integers(1, 2))):
        expr = draw(st.sampled_from(_UNARY)).format(expr)
    return expr


_NUMPY_NAMES = {"jnp": np, "jax": types.SimpleNamespace(
    nn=types.SimpleNamespace(sigmoid=lambda z: 1.0 / (1.0 + np.exp(-z))))}


def _apart(h_new: str, h_old: str) -> bool:
    """Whether two helper bodies differ by more than 0.1 somewhere on [-1, 1] (in NumPy).

    `jnp.sin(v)` and `jnp.tanh(v)` agree to 1e-3 near 0: redefining one as the other moved a
    case's answer less than the comparison's tolerance (an uninformative case).
    """
    v = np.linspace(-1.0, 1.0, 9)
    return bool(np.max(np.abs(eval(h_new, _NUMPY_NAMES, {"v": v})
                              - eval(h_old, _NUMPY_NAMES, {"v": v}))) > 0.1)


# -- patterns -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pattern:
    """How `f` reaches code and data: notebook source and how it is wrapped and called.

    `source` is formatted with ``body`` (the method body, its scale written `scale_expr`),
    ``final``, ``s`` (the scale's first value) and ``n``. `target` is the expression that is
    wrapped; `access` is how the object reaches the wrapped call: ``"global"`` (read inside, `f`
    takes only `x`), ``"argument"`` (a pytree passed as the second argument) or ``"static"``
    (passed as the second argument, ``static_argnums=1``); `argument` names it. `field` and
    `method` are the change cells for a field rebinding and a method replacement (``{s}`` and
    ``{body}`` filled in), or None where the pattern has no such change.
    """

    source: str
    target: str
    access: str = "global"
    argument: str | None = None
    scale_expr: str = "self.scale"
    field: str | None = None
    method: str | None = None


PATTERNS: dict[str, Pattern] = {
    # A plain user class held in a global, its method calling the helper.
    "user_class": Pattern(
        source="""\
class Model:
    def __init__(self, scale):
        self.scale = scale

    def apply(self, v):
        return {body}

model = Model({s})

def f(x):
    y = model.apply(x)
    return {final}
""",
        target="f", field="model.scale = {s}",
        method="def _apply(self, v):\n    return {body}\n\nModel.apply = _apply\n"),
    # A callable dataclass wrapped itself: `wrap(model)`.
    "dataclass": Pattern(
        source="""\
@dataclasses.dataclass
class Model:
    scale: float

    def __call__(self, x):
        y = self.features(x)
        return {final}

    def features(self, v):
        return {body}

model = Model({s})
""",
        target="model", field="model.scale = {s}",
        method="def _features(self, v):\n    return {body}\n\nModel.features = _features\n"),
    # A NamedTuple with a method, passed as a dynamic argument (its field is a traced leaf).
    "namedtuple_argument": Pattern(
        source="""\
class Params(NamedTuple):
    scale: float

    def apply(self, v):
        return {body}

params = Params({s})

def loss(x, params):
    y = params.apply(x)
    return {final}
""",
        target="loss", access="argument", argument="params",
        method="def _apply(self, v):\n    return {body}\n\nParams.apply = _apply\n"),
    # The same NamedTuple as a static argument (hashed by value).
    "namedtuple_static": Pattern(
        source="""\
class Params(NamedTuple):
    scale: float

    def apply(self, v):
        return {body}

params = Params({s})

def loss(x, params):
    y = params.apply(x)
    return {final}
""",
        target="loss", access="static", argument="params",
        method="def _apply(self, v):\n    return {body}\n\nParams.apply = _apply\n"),
    # `jax.tree_util.register_pytree_node_class`: an array leaf and the scale as aux data.
    "pytree_node_class": Pattern(
        source="""\
@jax.tree_util.register_pytree_node_class
class Model:
    def __init__(self, w, scale):
        self.w = w
        self.scale = scale

    def tree_flatten(self):
        return (self.w,), (self.scale,)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    def apply(self, v):
        return {body} + self.w * v

model = Model(np.full(({n},), 0.25, np.float32), {s})

def loss(x, model):
    y = model.apply(x)
    return {final}
""",
        target="loss", access="argument", argument="model", field="model.scale = {s}",
        method="def _apply(self, v):\n    return {body} + self.w * v\n\nModel.apply = _apply\n"),
    # `jax.tree_util.register_dataclass`: the scale as a meta field.
    "pytree_dataclass": Pattern(
        source="""\
@functools.partial(jax.tree_util.register_dataclass, data_fields=["w"], meta_fields=["scale"])
@dataclasses.dataclass
class Model:
    w: np.ndarray
    scale: float

    def apply(self, v):
        return {body} + self.w * v

model = Model(np.full(({n},), 0.25, np.float32), {s})

def loss(x, model):
    y = model.apply(x)
    return {final}
""",
        target="loss", access="argument", argument="model", field="model.scale = {s}",
        method="def _apply(self, v):\n    return {body} + self.w * v\n\nModel.apply = _apply\n"),
    # An equinox Module (a static field) passed as an argument: `loss(x, model)`.
    "eqx_module": Pattern(
        source="""\
class Model(eqx.Module):
    w: np.ndarray
    scale: float = eqx.field(static=True)

    def __call__(self, v):
        return {body} + self.w * v

model = Model(np.full(({n},), 0.25, np.float32), {s})

def loss(x, model):
    y = model(x)
    return {final}
""",
        target="loss", access="argument", argument="model",
        method="def _call(self, v):\n    return {body} + self.w * v\n\nModel.__call__ = _call\n"),
    # A library object holding user code: `eqx.nn.Lambda(act)` in a global.
    "eqx_lambda": Pattern(
        source="""\
def act(v):
    return {body}

layer = eqx.nn.Lambda(act)

def f(x):
    y = layer(x)
    return {final}
""",
        target="f", scale_expr="{s}"),
    # A `types.SimpleNamespace` config read in a callee, bound by `functools.partial(f, cfg)`.
    "namespace_config": Pattern(
        source="""\
cfg = types.SimpleNamespace(scale={s})

def features(v, cfg):
    return {body}

def f(cfg, x):
    y = features(x, cfg)
    return {final}
""",
        target="functools.partial(f, cfg)", scale_expr="cfg.scale", field="cfg.scale = {s}"),
    # A `functools.partial` of user code with a keyword, wrapped itself.
    "functools_partial": Pattern(
        source="""\
def features(v, scale):
    return {body}

def g(x, scale):
    y = features(x, scale)
    return {final}

f = functools.partial(g, scale={s})
""",
        target="f", scale_expr="scale"),
    # A `jax.tree_util.Partial` argument: user code in its treedef, the scale a leaf.
    "tree_partial": Pattern(
        source="""\
def act(v, scale):
    return {body}

fn = jax.tree_util.Partial(act, scale={s})

def loss(x, fn):
    y = fn(x)
    return {final}
""",
        target="loss", access="argument", argument="fn", scale_expr="scale"),
    # A user function passed as a static argument: `wrap(loss, static_argnums=1)`.
    "static_function": Pattern(
        source="""\
def act(v):
    return {body}

def loss(x, act):
    y = act(x)
    return {final}
""",
        target="loss", access="static", argument="act", scale_expr="{s}"),
    # A callable object passed as a static argument (hashed by identity), its field rebound.
    "static_object": Pattern(
        source="""\
class Act:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, v):
        return {body}

act = Act({s})

def loss(x, act):
    y = act(x)
    return {final}
""",
        target="loss", access="static", argument="act", field="act.scale = {s}",
        method="def _call(self, v):\n    return {body}\n\nAct.__call__ = _call\n"),
    # Configuration contexts: a matmul-precision context inside, PRNG keys of the default
    # implementation, and every call made under `jax.enable_x64(X64)`.
    "config_context": Pattern(
        source="""\
PREC = "highest"

def f(x):
    with jax.default_matmul_precision(PREC):
        v = x + 0.1 * jax.random.normal(jax.random.key(7), x.shape, x.dtype)
        y = {body}
    return {final}
""",
        target="f", scale_expr="{s}"),
}

CHANGES = ("helper", "float", "field", "method", "numpy", "x64", "prng")


def applicable_changes(pattern: str) -> tuple[str, ...]:
    spec = PATTERNS[pattern]
    out = ["helper", "float", "numpy", "x64"]
    if spec.field is not None:
        out.append("field")
    if spec.method is not None:
        out.append("method")
    if pattern == "config_context":
        out.append("prng")
    return tuple(c for c in CHANGES if c in out)


STACKS = ("value", "grad", "hessian", "jit_hessian", "vmap_grad")
PREPARATIONS = ("jit", "operator", "eager")
BATCH = 2
_PRNG_CHANGED_TO = "rbg"


# -- a case ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One pattern, change, stack and preparation, with the values it uses (reproducible)."""

    pattern: str
    change: str
    stack: str
    preparation: str
    h_old: str = "jnp.sin(v)"
    h_new: str = "jnp.cos(v)"
    body_old: int = 0
    body_new: int = 1
    c_old: float = 0.5
    c_new: float = -0.8
    s_old: float = 1.25
    s_new: float = 0.4
    n: int = 2
    x64: bool = False
    x32_input: bool = False
    seed: int = 0

    @property
    def spec(self) -> Pattern:
        return PATTERNS[self.pattern]

    def _body(self, index: int) -> str:
        return BODIES[index].format(s=self.spec.scale_expr.format(s=self.s_old))

    def setup_source(self) -> str:
        """The first notebook cell: globals, the pattern's code, the objects."""
        n = self.n
        head = (f"X64 = {self.x64}\nC = {self.c_old!r}\n"
                f"M = np.random.default_rng({self.seed}).standard_normal(({n}, {n})) / {n}\n\n"
                f"def h(v):\n    return {self.h_old}\n\n")
        return head + self.spec.source.format(body=self._body(self.body_old), final=FINAL,
                                              s=repr(self.s_old), n=n)

    def change_source(self) -> str:
        """The notebook cell that changes the world."""
        spec = self.spec
        if self.change == "helper":
            return f"def h(v):\n    return {self.h_new}\n"
        if self.change == "float":
            return f"C = {self.c_new!r}\n"
        if self.change == "field":
            return spec.field.format(s=repr(self.s_new)) + "\n"
        if self.change == "method":
            # The added term keeps the new method apart from the old one near v = 0 (where
            # `jnp.sin(h(v))` and `h(v)` agree to the comparison's tolerance).
            return spec.method.format(body=self._body(self.body_new) + " + 0.5 * jnp.sin(v)")
        if self.change == "numpy":
            return (f"M[...] = np.random.default_rng({self.seed + 1}).standard_normal("
                    f"({self.n}, {self.n})) / {self.n}  # in place\n")
        if self.change == "x64":
            return f"X64 = {not self.x64}  # the flag later calls run under\n"
        if self.change == "prng":
            return f'jax.config.update("jax_default_prng_impl", "{_PRNG_CHANGED_TO}")\n'
        raise ValueError(self.change)

    def program(self) -> str:
        """This case as a standalone program: prints the results and asserts what must hold."""
        spec = self.spec
        static = spec.access == "static"
        arg = f", {spec.argument}" if spec.access != "global" else ""
        rest = "" if spec.access == "global" else ", None"
        wrap_kw = ", static_argnums=1" if static else ""
        jit_kw = ", static_argnums=1" if static else ""
        stack_of = functools.partial(_stack_source, self.stack)
        if self.preparation == "jit":
            prepared = f"jax.jit({stack_of('wf', static, rest)}{jit_kw})"
        elif self.preparation == "eager":
            prepared = stack_of("wf", static, rest)
        else:
            prepared = _operator_source(self.stack, static, rest)
        if static:
            plain = f"jax.jit(lambda x: {stack_of('lambda x: T(x, A)', False, '')}(x))"
            oracle_call = "x_in"
        else:
            plain = f"jax.jit(lambda x{arg}: {stack_of('T', False, rest)}(x{arg}))"
            oracle_call = f"x_in{arg}"
        x_in = ("np.random.default_rng(SEED).uniform(-1, 1, (BATCH, N))"
                if self.stack == "vmap_grad" else
                "np.random.default_rng(SEED).uniform(-1, 1, (N,))")
        if self.x32_input:
            x_in += ".astype(np.float32)"
        lines = [
            "# Generated by tests/fuzzing_objects.py",
            f"# {self!r}",
            "import dataclasses, functools, types",
            "from typing import NamedTuple",
            "import equinox as eqx  # or tests.fuzzing_objects.load_equinox(fallback=True)",
            "import jax, jax.numpy as jnp, numpy as np",
            "import jaxworld",
            f"SEED, N, BATCH = {self.seed}, {self.n}, {BATCH}",
            f"x_in = {x_in}",
            "",
            "# -- cell 1: the notebook --",
            self.setup_source().rstrip(),
            "",
            "# -- cell 2: prepared before the change --",
            f"wf = jaxworld.wrap({spec.target}{wrap_kw})",
            f"P = {prepared}",
            "with jax.enable_x64(X64):",
            f"    before = P(x_in{arg})",
            "",
            "# -- cell 3: the change --",
            self.change_source().rstrip(),
            "jaxworld.advance()",
            "",
            "# -- cell 4: called again; plain JAX traced fresh (a new lambda under jax.jit; the",
            "# fuzzer itself runs cells 1 and 3 again in a fresh namespace for it) --",
            "with jax.enable_x64(X64):",
            f"    after = P(x_in{arg})",
            f"    T = {spec.target}",
            *([f"    A = {spec.argument}"] if static else []),
            f"    expected = ({plain})({oracle_call})",
            "print(before, after, expected, sep='\\n')",
            "assert np.asarray(after).dtype == np.asarray(expected).dtype, (after, expected)",
            "np.testing.assert_allclose(after, expected, rtol=2e-4, atol=2e-4)",
        ]
        return "\n".join(lines) + "\n"


def _stack_source(stack: str, g: str, static: bool, rest: str) -> str:
    """The source of `_plain_stack`: `stack` applied to the expression `g`."""
    jit_kw = ", static_argnums=1" if static else ""
    value = f"({g})" if g.startswith("lambda") else g
    return {"value": value, "grad": f"jax.grad({g})", "hessian": f"jax.hessian({g})",
            "jit_hessian": f"jax.jit(jax.hessian({g}){jit_kw})",
            "vmap_grad": f"jax.vmap(jax.grad({g}), in_axes=(0{rest}))"}[stack]


def _operator_source(stack: str, static: bool, rest: str) -> str:
    if static:  # jaxworld's operators take no static arguments: `jaxworld.jit` does
        return f"jaxworld.jit({_stack_source(stack, 'wf', True, rest)}, static_argnums=1)"
    return {"value": "jaxworld.jit(wf)", "grad": "jaxworld.grad(wf)",
            "hessian": "jaxworld.hessian(wf)", "jit_hessian": "jax.jit(jaxworld.hessian(wf))",
            "vmap_grad": f"jax.vmap(jaxworld.grad(wf), in_axes=(0{rest}))"}[stack]


@st.composite
def cases(draw, patterns: tuple[str, ...] | None = None) -> Case:
    pattern, change = draw(st.sampled_from(_pairs(patterns)))
    h_old = draw(helper_bodies())
    h_new = draw(helper_bodies().filter(lambda h: _apart(h, h_old)))
    body_old = draw(st.integers(0, len(BODIES) - 1))
    body_new = draw(st.integers(0, len(BODIES) - 1).filter(lambda b: b != body_old))
    return with_axes(Case(
        pattern=pattern, change=change, stack=draw(st.sampled_from(STACKS)),
        preparation=draw(st.sampled_from(PREPARATIONS)), x32_input=draw(st.booleans()),
        h_old=h_old, h_new=h_new, body_old=body_old, body_new=body_new,
        c_old=draw(st.sampled_from((0.5, 1.25, -0.8))),
        c_new=draw(st.sampled_from((1.5, -0.3, 0.9))),
        s_old=draw(st.sampled_from((1.25, 0.6, -0.5))),
        s_new=draw(st.sampled_from((0.4, -1.1, 2.0))),
        n=draw(st.sampled_from((2, 3))), x64=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16))))


def _pairs(patterns: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    return [(p, c) for p in patterns or tuple(PATTERNS) for c in applicable_changes(p)]


def with_axes(case: Case, pattern: str | None = None, change: str | None = None,
              stack: str | None = None, preparation: str | None = None) -> Case:
    """`case` with the given axes, keeping the generator's rules."""
    case = dataclasses.replace(
        case, pattern=pattern or case.pattern, change=change or case.change,
        stack=stack or case.stack, preparation=preparation or case.preparation)
    if case.change == "x64" and case.x32_input:
        # With a float32 input the x64 flag moves derivatives by float32 rounding only (their
        # dtype is the input's); the value's dtype changes.
        case = dataclasses.replace(case, stack="value")
    return case


# -- running a case -------------------------------------------------------------------------------

_state = {"fallback_equinox": False}


def prelude() -> dict:
    return {"jax": jax, "jnp": jnp, "np": np, "functools": functools, "dataclasses": dataclasses,
            "types": types, "NamedTuple": NamedTuple, "jaxworld": jaxworld,
            "eqx": load_equinox(_state["fallback_equinox"])}


def namespace(case: Case, world: str) -> dict:
    """A fresh notebook namespace: cell 1 run, and for the "new" world the change cell too."""
    ns = prelude()
    exec(compile(case.setup_source(), "<objfuzz-cell-1>", "exec"), ns)
    if world == "new":
        exec(compile(case.change_source(), "<objfuzz-cell-3>", "exec"), ns)
    return ns


def _plain_stack(stack: str, g: Callable, static: bool, n_rest: int) -> Callable:
    """`stack` of `g` (argument 0 differentiated); `static`: argument 1 is static under jit."""
    jit_kw = {"static_argnums": 1} if static else {}
    if stack == "value":
        return g
    if stack == "grad":
        return jax.grad(g)
    if stack == "hessian":
        return jax.hessian(g)
    if stack == "jit_hessian":
        return jax.jit(jax.hessian(g), **jit_kw)
    if stack == "vmap_grad":
        return jax.vmap(jax.grad(g), in_axes=(0,) + (None,) * n_rest)
    raise ValueError(stack)


def prepare(case: Case, wf) -> Callable:
    """The preparation of `case` of the wrapped `wf`, built before the change."""
    static = case.spec.access == "static"
    n_rest = 0 if case.spec.access == "global" else 1
    if case.preparation == "jit":
        return jax.jit(_plain_stack(case.stack, wf, static, n_rest),
                       **({"static_argnums": 1} if static else {}))
    if case.preparation == "eager":
        return _plain_stack(case.stack, wf, static, n_rest)
    if static:
        return jaxworld.jit(_plain_stack(case.stack, wf, static, n_rest), static_argnums=1)
    if case.stack == "value":
        return jaxworld.jit(wf)
    if case.stack == "grad":
        return jaxworld.grad(wf)
    if case.stack == "hessian":
        return jaxworld.hessian(wf)
    if case.stack == "jit_hessian":
        return jax.jit(jaxworld.hessian(wf))
    return jax.vmap(jaxworld.grad(wf), in_axes=(0,) + (None,) * n_rest)


def _plain(case: Case, world: str, x_in):
    """(fn, args, x64): plain JAX's stack on a fresh copy of `world`, and what to call it with."""
    ns = namespace(case, world)
    spec = case.spec
    target = eval(spec.target, ns)
    if spec.access == "static":
        a = ns[spec.argument]
        return (lambda x: _plain_stack(case.stack, lambda x: target(x, a), False, 0)(x),
                (x_in,), ns["X64"])
    if spec.access == "argument":
        return (lambda x, a: _plain_stack(case.stack, target, False, 1)(x, a),
                (x_in, ns[spec.argument]), ns["X64"])
    return lambda x: _plain_stack(case.stack, target, False, 0)(x), (x_in,), ns["X64"]


def oracles(case: Case, x_in, worlds=("old", "new"), *, eager: bool = False) -> list:
    """Plain JAX on fresh copies of `worlds`, traced fresh: one new `jax.jit` (or eagerly).

    Both worlds go into one `jax.jit` when they run under the same configuration (one compile
    instead of two: compiles dominate a case). The "prng" change is made by the new world's own
    cell, so that world is run after the old one, alone.
    """
    if case.change == "prng":
        # The new world's cell switches the process-wide PRNG implementation: put back the one
        # in force, so that the live notebook's calls before its own change cell keep it.
        prng = jax.config.jax_default_prng_impl
        try:
            return [_oracles(case, x_in, (w,), eager)[0] for w in worlds]
        finally:
            jax.config.update("jax_default_prng_impl", prng)
    return _oracles(case, x_in, worlds, eager)


def _oracles(case: Case, x_in, worlds, eager: bool) -> list:
    plains = [_plain(case, w, x_in) for w in worlds]
    groups: dict[bool, list[int]] = {}
    for i, (_, _, x64) in enumerate(plains):
        groups.setdefault(x64, []).append(i)
    out: list = [None] * len(worlds)
    for x64, members in groups.items():
        fns = [plains[i][0] for i in members]
        args = [plains[i][1] for i in members]
        both = lambda args, fns=fns: [fn(*a) for fn, a in zip(fns, args, strict=True)]
        with jax.enable_x64(x64):
            results = both(args) if eager else jax.jit(both)(args)
        for i, r in zip(members, results, strict=True):
            out[i] = np.asarray(r)
    return out


def inputs(case: Case) -> np.ndarray:
    rng = np.random.default_rng(case.seed)
    shape = (BATCH, case.n) if case.stack == "vmap_grad" else (case.n,)
    # float64 NumPy: JAX makes it float32 or float64 by the x64 flag of the call (the "x64"
    # change). A float32 input keeps one input signature under both flags, so only the trace
    # configuration tells the two worlds apart (issue #11: "float64 output in x32 mode").
    x = rng.uniform(-1.0, 1.0, shape)
    return x.astype(np.float32) if case.x32_input else x


def _tolerance(dtype) -> dict:
    # As tests/fuzzing.py: a few transcendental ops under up to two derivative orders.
    return ({"rtol": 1e-9, "atol": 1e-9} if np.dtype(dtype) == np.float64
            else {"rtol": 2e-4, "atol": 2e-4})


def compare(actual, expected, what: str) -> None:
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape and a.dtype == e.dtype, \
        f"{what}: shape/dtype {a.shape}/{a.dtype}, plain JAX {e.shape}/{e.dtype}"
    np.testing.assert_allclose(a, e, **_tolerance(e.dtype), err_msg=what)


def changed(old, new) -> bool:
    """Whether `new` is told apart from `old` by far more than the comparison's tolerance."""
    old, new = np.asarray(old), np.asarray(new)
    if old.shape != new.shape or old.dtype != new.dtype:
        return True
    tol = _tolerance(new.dtype)
    return bool(np.any(np.abs(old - new) > 3 * (tol["atol"] + tol["rtol"] * np.abs(new))))


class UnchangedAnswer(AssertionError):
    """The change did not change plain JAX's answer: a generator problem, not jaxworld's."""


def run_case(case: Case) -> None:
    """Run one case; raise AssertionError naming what differed from plain JAX."""
    prng_before = jax.config.jax_default_prng_impl
    try:
        _run_case(case)
    finally:
        jax.config.update("jax_default_prng_impl", prng_before)


def _run_case(case: Case) -> None:
    spec = case.spec
    x_in = inputs(case)

    def judge(actual, world: str, expected, what: str) -> None:
        try:
            compare(actual, expected, what)
        except AssertionError as against_jit:
            try:
                compare(actual, oracles(case, x_in, (world,), eager=True)[0], what)
            except AssertionError as against_eager:
                raise AssertionError(f"{against_jit}\n--- and against plain JAX run eagerly ---\n"
                                     f"{against_eager}") from None
            _counter["eager_judged"] += 1

    old, new = oracles(case, x_in)
    if not changed(old, new):
        raise UnchangedAnswer(f"the {case.change} change did not change plain JAX's answer "
                              f"({old} vs {new}): the case tests nothing")
    ns = namespace(case, "old")
    wf = jaxworld.wrap(eval(spec.target, ns),
                       static_argnums=(1,) if spec.access == "static" else ())
    prepared = prepare(case, wf)

    def call():
        args = (x_in,) if spec.access == "global" else (x_in, ns[spec.argument])
        with jax.enable_x64(ns["X64"]):
            return np.asarray(prepared(*args))

    judge(call(), "old", old, f"{case.preparation} {case.stack}, before the change")
    exec(compile(case.change_source(), "<objfuzz-cell-3>", "exec"), ns)
    jaxworld.advance()
    after = call()
    stale = " STALE: the old world's answer" if not changed(old, after) else ""
    judge(after, "new", new, f"{case.preparation} {case.stack} built before the {case.change} "
          f"change, called after it and jaxworld.advance().{stale}")


# -- the long run ---------------------------------------------------------------------------------

_counter = {"eager_judged": 0}


@dataclasses.dataclass
class Outcome:
    case: Case
    error: BaseException | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.error is None


def run_outcome(case: Case) -> Outcome:
    try:
        run_case(case)
    except Exception as err:  # noqa: BLE001 - a failing case is data: collected, not raised
        return Outcome(case, err, "".join(traceback.format_exception(err))[-3000:])
    return Outcome(case)


def generate(examples: int, seed: int, patterns: tuple[str, ...] | None = None) -> list[Case]:
    """`examples` cases from `seed` (the same cases for the same arguments).

    Hypothesis draws each case's values; the combinatorial axes (pattern and change, stack,
    preparation) come from `random.Random(seed)`: each (pattern, change) pair once in every 71
    cases, stack and preparation uniformly. Hypothesis mutates the examples it already has and
    favours the ends of a list: 300 draws of `cases()` missed 22 of the 71 pairs.
    """
    out: list[Case] = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(cases(patterns))
    def collect(case):
        out.append(case)

    from hypothesis import seed as hypothesis_seed
    hypothesis_seed(seed)(collect)()
    rnd = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    cases_out: list[Case] = []
    for drawn in out:
        if not pairs:  # stratified: each pair once in every len(pairs) cases, in random order
            pairs = rnd.sample(_pairs(patterns), len(_pairs(patterns)))
        pattern, change = pairs.pop()
        cases_out.append(with_axes(drawn, pattern, change, rnd.choice(STACKS),
                                   rnd.choice(PREPARATIONS)))
    return cases_out


def fuzz(examples: int, seed: int, chunk: int, on_outcome: Callable[[Outcome], None],
         patterns: tuple[str, ...] | None = None) -> list[Outcome]:
    """Run `examples` cases in chunks of `chunk` (chunk i drawn from seed `seed + i`)."""
    outcomes = []
    chunk_seed = seed
    while len(outcomes) < examples:
        todo = generate(min(chunk, examples - len(outcomes)), chunk_seed, patterns)
        if not todo:
            break
        for case in todo:
            outcome = run_outcome(case)
            outcomes.append(outcome)
            on_outcome(outcome)
        chunk_seed += 1
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    """Failures per pattern (rows) and change (columns), as ``failed/run``."""
    runs = collections.Counter((o.case.pattern, o.case.change) for o in outcomes)
    fails = collections.Counter((o.case.pattern, o.case.change) for o in outcomes if not o.passed)
    width = max(map(len, PATTERNS)) + 2
    lines = ["".ljust(width) + "".join(c.rjust(9) for c in CHANGES)]
    for p in PATTERNS:
        cells = [f"{fails[p, c]}/{runs[p, c]}" if runs[p, c] else "-" for c in CHANGES]
        lines.append(p.ljust(width) + "".join(cell.rjust(9) for cell in cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first chunk")
    parser.add_argument("--chunk", type=int, default=100, help="cases per hypothesis draw")
    parser.add_argument("--log", help="also write everything (with tracebacks) to this file")
    parser.add_argument("--brief", action="store_true",
                        help="print each failure's Case(...) only, not its program")
    parser.add_argument("--patterns", help="comma-separated pattern kinds (default: all)")
    parser.add_argument("--fallback-equinox", action="store_true",
                        help="use the pure-Python stand-in for equinox")
    parser.add_argument("--fast-compile", action="store_true",
                        help="XLA's optimizations off (jax_disable_most_optimizations) on both "
                             "sides; a failing case is judged again with the default ones")
    args = parser.parse_args(argv)
    jax.config.update("jax_numpy_rank_promotion", "raise")  # as in tests/conftest.py
    jaxworld._deps.settings.verify_guards = True  # as in tests/conftest.py
    _state["fallback_equinox"] = args.fallback_equinox
    if args.fast_compile:
        jax.config.update("jax_disable_most_optimizations", True)
    patterns = tuple(args.patterns.split(",")) if args.patterns else None
    log = open(args.log, "w") if args.log else None  # noqa: SIM115 - closed below
    start = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_start = usage.ru_utime + usage.ru_stime
    rejudged = 0

    def emit(text: str, *, console: bool = True) -> None:
        if console:
            print(text, flush=True)
        if log:
            log.write(text + "\n")
            log.flush()

    counts = collections.Counter()

    def on_outcome(outcome: Outcome) -> None:
        nonlocal rejudged
        counts["run"] += 1
        if not outcome.passed and args.fast_compile:
            # Unoptimized XLA can compute wrong gradients for plain JAX too (tests/fuzzing.py).
            jax.config.update("jax_disable_most_optimizations", False)
            try:
                again = run_outcome(outcome.case)
            finally:
                jax.config.update("jax_disable_most_optimizations", True)
            if again.passed:
                rejudged += 1
                outcome.error, outcome.detail = None, ""
        if not outcome.passed:
            kind = ("UNINFORMATIVE" if isinstance(outcome.error, UnchangedAnswer) else "FAILED")
            emit(f"{kind}: {outcome.case!r}")
            emit(textwrap.indent(str(outcome.error).strip()[:1500], "  | "))
            if not args.brief:
                emit(textwrap.indent(outcome.case.program(), "    "))
            emit(textwrap.indent(outcome.detail, "  "), console=False)
            counts[kind] += 1
        if counts["run"] % args.chunk == 0:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            emit(f"[{time.time() - start:7.0f}s] {counts['run']} cases, {counts['FAILED']} failed,"
                 f" {counts['run'] / (time.time() - start):.2f} cases/s, max RSS {rss:.0f} MiB")

    outcomes = fuzz(args.examples, args.seed, args.chunk, on_outcome, patterns)
    elapsed = time.time() - start
    unchanged = sum(isinstance(o.error, UnchangedAnswer) for o in outcomes)
    failed = sum(not o.passed for o in outcomes) - unchanged
    emit(table(outcomes))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_start
    emit(f"{len(outcomes)} cases in {elapsed:.0f}s ({len(outcomes) / elapsed:.2f} cases/s; "
         f"{cpu:.0f} CPU s, {len(outcomes) / cpu:.2f} cases per CPU second), "
         f"{_counter['eager_judged']} comparison(s) settled by the eager oracle, {rejudged} "
         "fast-compile artefact(s) judged again and passed")
    from .test_fuzz_objects import KNOWN_STALE  # the kinds allowed to fail (none since #11)

    unknown = sum(not o.passed and not isinstance(o.error, UnchangedAnswer)
                  and (o.case.pattern, o.case.change) not in KNOWN_STALE for o in outcomes)
    emit(f"{unknown} failing case(s) outside the kinds KNOWN_STALE in tests/test_fuzz_objects.py")
    # An uninformative case (its change did not move plain JAX's answer beyond the tolerance)
    # neither passes nor fails: it could not tell a stale answer from a fresh one.
    emit(f"{len(outcomes) - failed - unchanged} passed, {failed} failed, {unchanged} "
         "uninformative (the change did not change plain JAX's answer)")
    if log:
        log.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
