"""`World`: an isolated namespace in which code is defined, redefined and the epoch advanced.

It is what the `world` pytest fixture hands a test, and what every `WorldScenario` runs in.
On exit it removes everything it added to the process: its temporary directory, its entry on
``sys.path``, the modules it imported from there, and the namespace's contents (so the functions
defined in it, and jaxworld's traces of them, can be freed). Only the epoch stays advanced.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import sys
import tempfile
import textwrap
import types
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import _epoch


class World:
    """A fresh namespace to define and redefine functions in, like notebook cells.

    Use it as a context manager (the pytest fixture ``world`` does this for you).

    Raises:
      TypeError: `namespace` is not a dict.

    Example:
      >>> import jax, jaxworld
      >>> from jaxworld.testing import World
      >>> with World() as world:
      ...     world.define("def g(x): return jnp.sin(x)\\ndef f(x): return g(x) ** 2")
      ...     df = jaxworld.grad(world["f"])
      ...     before = float(df(1.0))
      ...     world.define("def g(x): return 2.0 * x")
      ...     _ = world.advance()
      ...     after = float(df(1.0))
      >>> after
      8.0
    """

    def __init__(self, name: str = "world", namespace: dict[str, Any] | None = None):
        """A world named `name` (it names the cells' filenames, ``<world:NAME:N>``).

        Args:
          name: the world's name.
          namespace: define into this dict instead of a fresh namespace; nothing is added to it
            (a test that builds its own globals). `close()` still empties it.
        """
        if namespace is not None and not isinstance(namespace, dict):
            raise TypeError(
                f"jaxworld.testing.World: namespace must be a dict, got "
                f"{type(namespace).__name__}. Example: World('cells', namespace={{'jnp': jnp}}).")
        self.name = name
        self._dir: str | None = None
        self._modules: set[str] = set()
        self._cells = 0
        self._closed = False
        if namespace is None:
            self.namespace: dict[str, Any] = {}
            self._reset_namespace()
        else:
            self.namespace = namespace

    def _reset_namespace(self) -> None:
        self.namespace.clear()
        self.namespace.update({
            "__name__": f"__jaxworld_{self.name}__", "__builtins__": __builtins__,
            "jax": jax, "jnp": jnp, "np": np, "lax": lax, "functools": functools,
            "importlib": importlib, "world": self,
        })

    # -- context management -------------------------------------------------------------------
    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove everything this world added to the process (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for name in self._modules:
            sys.modules.pop(name, None)
        self._modules.clear()
        if self._dir is not None:
            while self._dir in sys.path:
                sys.path.remove(self._dir)
            importlib.invalidate_caches()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.namespace.clear()

    # -- defining code ------------------------------------------------------------------------
    def define(self, source: str, *, filename: str | None = None) -> None:
        """Execute `source` (dedented) in the namespace, like running a notebook cell.

        Functions defined here are user code to jaxworld's dependency records (the cell's
        filename is ``<world:NAME:N>``, or `filename`: e.g. ``"<ipython-input-3-0123abcd>"``
        for code that must look as if IPython compiled it, or a path for code from a file).

        Raises:
          TypeError: `source` is not a str.
          RuntimeError: the world is closed.
        """
        self._check_open("define")
        if not isinstance(source, str):
            raise TypeError(
                f"jaxworld.testing.World.define: expected Python source (a str), got "
                f"{type(source).__name__}. Use world[name] = value to bind an object.")
        self._cells += 1
        if filename is None:
            filename = f"<world:{self.name}:{self._cells}>"
        code = compile(textwrap.dedent(source), filename, "exec")
        exec(code, self.namespace)

    def module(self, name: str, source: str) -> types.ModuleType:
        """Write `source` as module `name` in this world's directory and import it.

        The directory is on ``sys.path`` while the world is open. Calling it again with new
        source rewrites the file and `importlib.reload`s the module, the way an edited helper
        file is reloaded in a notebook. The module is bound to `name` in the namespace too.
        """
        self._check_open("module")
        if not name.isidentifier():
            raise ValueError(f"jaxworld.testing.World.module: {name!r} is not a module name.")
        if name in sys.modules and name not in self._modules:
            raise ValueError(
                f"jaxworld.testing.World.module: a module named {name!r} is already imported in "
                "this process; pick a name that is not taken (the world removes its modules on "
                "exit and must not remove someone else's).")
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="jaxworld-world-")
            sys.path.insert(0, self._dir)
        path = os.path.join(self._dir, f"{name}.py")
        with open(path, "w") as fh:
            fh.write(textwrap.dedent(source))
        # A rewrite within the same second and of the same size would look unchanged to the
        # bytecode cache; drop it so the new source is compiled.
        shutil.rmtree(os.path.join(self._dir, "__pycache__"), ignore_errors=True)
        importlib.invalidate_caches()
        if name in self._modules:
            module = importlib.reload(sys.modules[name])
        else:
            self._modules.add(name)
            module = importlib.import_module(name)
        self.namespace[name] = module
        return module

    def advance(self) -> int:
        """`jaxworld.advance()`: start a new world; returns the new epoch."""
        return _epoch.advance()

    def fresh(self, name: str) -> Callable:
        """A fresh copy of the function bound to `name`, for plain-JAX references.

        JAX caches traces by function identity; the copy is a new function object (same code,
        globals, defaults and closure cells), so tracing it sees the namespace as it is now.
        """
        return fresh_function(self[name])

    # -- mapping access ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        try:
            return self.namespace[name]
        except KeyError:
            defined = sorted(k for k in self.namespace if not k.startswith("__"))
            raise KeyError(
                f"jaxworld.testing.World: nothing named {name!r} is defined in this world; "
                f"defined: {', '.join(defined)}.") from None

    def __setitem__(self, name: str, value: Any) -> None:
        self.namespace[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self.namespace

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"jaxworld.testing.World.{what}: this world is closed.")

    def __repr__(self) -> str:
        return f"<jaxworld.testing.World {self.name!r}>"


def fresh_function(fun: Callable) -> Callable:
    """A new callable object equivalent to `fun`, so that no JAX cache keyed on identity hits."""
    if isinstance(fun, types.FunctionType):
        copy = types.FunctionType(fun.__code__, fun.__globals__, fun.__name__,
                                  fun.__defaults__, fun.__closure__)
        copy.__kwdefaults__ = fun.__kwdefaults__
        copy.__dict__.update(fun.__dict__)
        copy.__qualname__ = fun.__qualname__
        return copy
    if isinstance(fun, functools.partial):
        return functools.partial(fresh_function(fun.func), *fun.args, **fun.keywords)

    def fresh(*args, **kwargs):
        return fun(*args, **kwargs)

    return fresh
