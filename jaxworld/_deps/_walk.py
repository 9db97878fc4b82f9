"""The walk: from the roots of a record to everything that can change a trace.

The walker visits values. Plain data (scalars, arrays, containers) is folded into a *token*; things
that hold code (functions, methods, partials, classes, modules, objects) are *expanded*: their parts
are visited in turn. Both are chosen by the value's type through two tables, `TOKENIZERS` and
`EXPANDERS` (type -> rule, looked up along the type's MRO, like JAX's primitive rule tables): a new
kind of object is one entry.

Every visit appends an `_Entry` (a stable key, a lazy description, a token) and, when the walk is
guarded, logs the read as a guard (`_guards.py`). The same four facts travel down the walk in one
`At`: the key, the description, the trail of user functions that led here (for "read by f -> g")
and the names those functions read (for the attributes of library objects).

What each rule follows (issue #11 added the parts marked *):
* user functions: code, globals named by the code (and by nested code), builtins, closure cells,
  defaults, attributes; modules imported inside the body (``import m`` reads ``sys.modules``)*;
* library functions: identity, plus ``__wrapped__`` and closure cells holding user code;
* bound methods, partials (``jax.tree_util.Partial`` too), static/class methods, properties;
* classes: user classes wholesale (every attribute, through the MRO, and the metaclass's user
  attributes*); library classes: the attributes any walked user code names*;
* user objects: class, instance ``__dict__`` and slots; library objects: the attributes any walked
  user code names*, every field of data-like ones (dataclasses, ``SimpleNamespace``)*, and every
  field holding user code (a user function in an ``eqx.nn.MLP``'s activation)*;
* instances of user subclasses of builtins (NamedTuple with methods, float / dict subclasses,
  IntEnum) and of NumPy arrays (a masked array's mask): their value, class and fields*;
* JAX's trace configuration flags that JAX leaves out of its own cache key*;
* (session 11, each once silently stale) identifier string constants of user code as names it
  reads (``globals()["SCALE"]``, ``getattr(cfg, "scale")``); deques, mappingproxies, bytearrays,
  ``array.array`` and ``os.environ`` by content; a weakref's referent; a ContextVar's value; a
  ``threading.local``'s attributes; attributes of library functions holding user code (a
  ``functools.singledispatch`` registry).
* (session 12, each once silently stale) an ABC's virtual subclasses (its own registry and its
  subclasses'); the flatten / unflatten functions a class is registered with as a pytree node;
  the object a builtin method is bound to (``CONFIG.get``); every field of a library
  ``Mapping`` / ``Sequence`` / ``Set`` (a ``ChainMap``'s maps); modules named by strings
  (``importlib.import_module(MOD)``); user code in a library object's fields, looked for through
  library closures (an optax ``inject_hyperparams`` schedule); the fields of a library object
  that the library code behind what user code uses on it reads (its ``__call__``, the methods and
  properties user code names, and the library methods those name on ``self``), and, on the
  objects those fields hold, the fields that code names (an nnx module's parameter slots).
"""

from __future__ import annotations

import abc
import array
import collections
import collections.abc
import contextvars
import dataclasses
import functools
import sys
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np

from .._compat import AbstractValue, out_of_key_config, pytree_node_functions
from ._classify import _HEAPTYPE, TypeMemo, is_user_class, is_user_function
from ._guards import (
    _builtins_of,
    _cell_contents,
    _content_checker,
    _dict_of,
    _equals,
    _followed,
    _Guards,
    _holder,
    _In,
    _is_absent_or_none,
    _lacks,
    _live,
    _NotGuardable,
    _resolve,
    _same_resolution,
    _slot_value,
)
from ._settings import settings
from ._tokens import (
    _ABSENT,
    _BORING_CLASS_ATTRS,
    _BORING_FUNCTION_ATTRS,
    _CONTAINERS,
    _CUSTOM_RULE_FIELDS,
    _EMPTY_CELL,
    _MAX_DEPTH,
    _MORE_CONTAINERS,
    _SCALARS,
    _array_digest,
    _buffer_token,
    _code_names,
    _code_strings,
    _Environ,
    _environ_items,
    _Ident,
    _instance_dict,
    _Later,
    _scalar_token,
    _short,
    _short_later,
    _Text,
    _Unverifiable,
    _What,
)

_EXACT_SCALARS = frozenset(_SCALARS)
_EXACT_CONTAINERS = frozenset(_CONTAINERS + _MORE_CONTAINERS)
# Fields of library objects are followed into values of these kinds when nobody names them.
_DATA_LIKE = (types.SimpleNamespace,)
# Library classes that keep a collection's contents in their own fields (`collections.ChainMap`,
# `UserDict`, `UserList`, anything registered with these ABCs).
_COLLECTIONS = (collections.abc.Mapping, collections.abc.Sequence, collections.abc.Set)
_MAX_SCAN = 64  # elements looked at when asking whether a library field holds user code
_CODE_DEPTH = 8  # levels looked through when asking whether a library value holds user code
_CODE_BUDGET = 256  # values looked at, in all, for one such question


class At(NamedTuple):
    """Where the walk is: the entry key, its description, the trail, the reader's names.

    `reads`: for a value found in a field of a library object by a name that the library's own
    code reads, the names that code reads (followed as fields of the value, if it is a library
    object too; `down` does not pass them on).
    """

    key: tuple[str, ...]
    what: _Text
    trail: tuple[str, ...]
    names: tuple[str, ...]
    reads: tuple[str, ...] = ()

    def down(self, label: str | tuple[str, ...], what: _Text) -> At:
        label = (label,) if isinstance(label, str) else label
        return At(self.key + label, what, self.trail, self.names)


@dataclass(slots=True)
class _Entry:
    key: tuple[str, ...]  # edge labels from the roots: stable between walks
    what: _Text
    kind: str  # "dep", "absent" (global not defined), "builtin", "config"
    token: Any = None
    text: Any = None  # description (a str or a `_Later`), filled at capture
    value: Any = None  # the live value, kept only by a re-walk (transient)
    place: tuple | None = None  # (kind, holder, name) of a user-level place, for `sites()`


def _rules(table: dict[type, Callable]) -> TypeMemo:
    """The rule of `table` for a type: the first along its MRO (memoized per type)."""
    return TypeMemo(lambda cls: next((table[k] for k in cls.__mro__ if k in table), None))


def _is_data_like(obj: Any) -> bool:
    """Objects whose fields are their data: read through a library's `__getitem__` (a
    `ChainMap`'s maps, a `UserDict`'s data) or named, they are walked whole."""
    return (isinstance(obj, _DATA_LIKE)
            or (dataclasses.is_dataclass(obj) and not isinstance(obj, type))
            # (Not memoized per type: registering a class with an ABC changes the answer;
            # `isinstance` against an ABC is cached by `abc` itself.)
            or (isinstance(obj, _COLLECTIONS) and not isinstance(obj, type)))


def _bears_code(value: Any, depth: int = 0, budget: list[int] | None = None,
                objects: bool = False) -> bool:
    """Whether a field of a library object, or a library function's closure cell, can hold user
    code (then it is walked unnamed).

    Library closures are looked into as well: an optax optimizer keeps a user's learning-rate
    schedule five closures down (`chain` -> `with_extra_args_support` -> `scale_by_schedule` ->
    `scale_by_learning_rate`'s lambda -> the schedule). The look is bounded: `_CODE_DEPTH`
    levels and `_CODE_BUDGET` values in all.
    """
    if budget is None:
        budget = [_CODE_BUDGET]
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if isinstance(value, types.FunctionType):
        if is_user_function(value):
            return True
        if depth >= _CODE_DEPTH:
            return False
        wrapped = value.__dict__.get("__wrapped__")
        return ((wrapped is not None and _bears_code(wrapped, depth + 1, budget, objects))
                or any(_bears_code(_cell_contents(c), depth + 1, budget, objects)
                       for c in value.__closure__ or ()))
    if isinstance(value, type):
        return is_user_class(value)
    if isinstance(value, _SCALARS) or depth >= _CODE_DEPTH:
        return False
    if isinstance(value, types.MethodType):
        return (_bears_code(value.__func__, depth + 1, budget, objects)
                or _bears_code(value.__self__, depth + 1, budget, objects))
    if isinstance(value, functools.partial):
        return (_bears_code(value.func, depth + 1, budget, objects)
                or _bears_code(value.args, depth + 1, budget, objects)
                or _bears_code(value.keywords, depth + 1, budget, objects))
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return False
    if isinstance(value, (list, tuple, collections.deque)):
        return any(_bears_code(v, depth + 1, budget, objects)
                   for _, v in zip(range(_MAX_SCAN), value, strict=False))
    if isinstance(value, (dict, types.MappingProxyType)):
        return any(_bears_code(v, depth + 1, budget, objects)
                   for _, v in zip(range(_MAX_SCAN), value.values(), strict=False))
    if isinstance(value, (types.ModuleType, AbstractValue)):
        return False
    cls = type(value)
    if is_user_class(cls):
        return True
    if objects or _is_data_like(value):
        # In a library closure, any library object's fields: optax's `inject_hyperparams` keeps
        # a user's schedule in a `WrappedSchedule` object, in a dict, in a closure of `update`.
        return any(_bears_code(v, depth + 1, budget, objects) for _, v in _fields_of(value))
    return False


def _follows_cell(content: Any) -> bool:
    """Whether a library function's closure cell holding `content` is walked."""
    return _followed(content) or (settings.reach and content is not _EMPTY_CELL
                                  and _bears_code(content, objects=True))


def _fields_of(obj: Any) -> list[tuple[str, Any]]:
    """(name, value) of an object's instance dict and its slots (unset slots left out)."""
    out = list(_instance_dict(obj).items())
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in [slots] if isinstance(slots, str) else slots:
            descriptor = klass.__dict__.get(name)
            if name in ("__dict__", "__weakref__") or not hasattr(descriptor, "__get__"):
                continue
            value = _slot_value(descriptor, obj, klass)
            if value is not _EMPTY_CELL:
                out.append((f"{klass.__qualname__}.{name}", value))
    return out


_imports_by_code: weakref.WeakKeyDictionary[types.CodeType, tuple[str, ...]] = (
    weakref.WeakKeyDictionary())


def _imported_modules(code: types.CodeType) -> tuple[str, ...]:
    """Names of the modules an ``import`` statement in `code` (or its nested code) reads."""
    cached = _imports_by_code.get(code)
    if cached is None:
        import dis

        names: dict[str, None] = {}
        stack = [code]
        while stack:
            c = stack.pop()
            for ins in dis.get_instructions(c):
                if ins.opname == "IMPORT_NAME" and isinstance(ins.argval, str):
                    names[ins.argval] = None
            stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        cached = _imports_by_code[code] = tuple(names)
    return cached


def _module_path(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _modules_named_by_strings(code: types.CodeType) -> tuple[str, ...]:
    """String constants of `code` (and its nested code) that could name a module:
    ``importlib.import_module("pkg.mod")`` reads ``sys.modules`` like an ``import``."""
    cached = _strings_naming_modules.get(code)
    if cached is None:
        imported = frozenset(_imported_modules(code))
        names: dict[str, None] = {}
        stack = [code]
        while stack:
            c = stack.pop()
            for k in c.co_consts:
                if isinstance(k, types.CodeType):
                    stack.append(k)
                for text in (k if type(k) is tuple else (k,)):
                    if type(text) is str and text not in imported and _module_path(text):
                        names[text] = None
        cached = _strings_naming_modules[code] = tuple(names)
    return cached


_strings_naming_modules: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()



class Walker:
    """One walk from a record's roots: appends entries in a deterministic order."""

    def __init__(self, capture: bool, memo: dict | None = None, guards: bool = False,
                 keep_values: bool = False) -> None:
        self.capture = capture  # capture: describe values now and hold them weakly
        # keep_values (with capture): keep each live value as well, until the caller drops it
        self._keep_values = keep_values
        self._memo = {} if memo is None else memo  # id(array) -> (array, digest)
        self.entries: list[_Entry] = []
        self._done: dict[tuple, Any] = {}  # (id, tag) -> object, pinned so ids stay unique
        self._classes: dict[int, tuple[type, bool]] = {}  # id -> (class, is a user class)
        # Containers being tokenized, by id, with their depth on the current path: a cycle's
        # token says which container it closes on (re-pointing a cycle is a change).
        self._active: dict[int, int] = {}
        self._depth = 0
        self.guards: _Guards | None = _Guards() if guards else None
        self.verifiable = True  # False once a token is `_Unverifiable`
        # Every code object of a walked user function (with its nested code): what `ran.py`
        # compares with the code that ran during the trace.
        self.codes: set[types.CodeType] = set()
        # Names read by any walked user code, in first-seen order, and the library objects and
        # classes whose attributes of those names are walked (issue #11: a method reading
        # `self.cfg.scale` names `scale` for the config object its caller passed).
        self.user_names: dict[str, None] = {}
        # Every user function walked: JAX may cache traces keyed on any of them (a
        # `jax.checkpoint` of a lambda, reached through the checkpoint's `__wrapped__`).
        self.functions: list[types.FunctionType] = []
        self._named_holders: list[tuple[Any, At, set[str], Callable]] = []
        self._reads: dict[int, tuple[type, dict]] = {}  # class id -> (class, memo)

    # -- guards --------------------------------------------------------------------------------
    def guard(self, read: _In | Callable[[], Any] | None, value: Any,
              check: Callable[[Any], bool] | None = None) -> None:
        """Log a read of `value`: `read()` must give `value` again (`check(read())`, if given).

        `read=None`: a place that cannot be rebound; only the contents of `value` are guarded.
        """
        g = self.guards
        if g is None:
            return
        try:
            content = None if check is not None else _content_checker(value, 0)
        except _NotGuardable:
            self.guards = None
            return
        if isinstance(read, _In):
            if check is None:
                group = g.groups.get(read.source)
                if group is None:
                    group = g.groups[read.source] = (read.namespace, [], [])
                group[1].append(read.name)
                group[2].append(g.ident(value))
                if content is None:
                    return
                read = None  # the identity is in the group; the contents are checked below
            else:
                namespace, name = read.namespace, read.name
                read = lambda: namespace().get(name, _ABSENT)  # noqa: E731
        if check is not None:
            g.checks.append(lambda: check(read()))
        elif read is None:
            if content is not None:
                held = _holder(value)
                g.checks.append(lambda: content(held()))
        else:
            g.reads.append(read)
            g.read_ids.append(g.ident(value))
            if content is not None:
                held = _holder(value)
                g.checks.append(lambda: content(held()))

    def unverifiable(self) -> None:
        """A value could not be inspected: the record reports a change at every check."""
        self.verifiable = False
        self.guards = None

    def finished_guards(self) -> _Guards | None:
        return None if self.guards is None else self.guards.finish()

    # -- bookkeeping ---------------------------------------------------------------------------
    def is_user_class(self, cls: type) -> bool:
        """`is_user_class`, decided once per class in a walk (the class pinned meanwhile)."""
        known = self._classes.get(id(cls))
        if known is None or known[0] is not cls:
            known = self._classes[id(cls)] = (cls, is_user_class(cls))
        return known[1]

    def library_reads(self, cls: type, name: str) -> tuple[str, ...]:
        """`_library_reads`, with the class's memo checked once per walk (the class pinned).

        A class whose library code is followed this way is guarded: a method of it replaced
        (on it or on a base) changes what its code reads.
        """
        memo = self._reads.get(id(cls))
        if memo is None or memo[0] is not cls:
            # Once per class in a walk: the memo checked against the class as it is now.
            memo = _reads_memo(cls)
            fingerprint, values = _class_fingerprint(cls)
            known = memo.get(None)
            if known is None or known[0] != fingerprint:
                memo.clear()
                memo[None] = (fingerprint, values)  # the values kept: their ids stay theirs
            memo = self._reads[id(cls)] = (cls, memo)
            mro = cls.__mro__
            held = _holder(cls)
            attrs = _class_attrs(mro)
            ids = tuple(tuple(map(id, a)) for a in attrs)
            self.guard(lambda: _class_attrs(held().__mro__), None,
                       check=lambda current, _kept=attrs: tuple(
                           tuple(map(id, a)) for a in current) == ids)
        return _library_reads(cls, name, memo[1])

    def library_container(self, value: Any, at: At, read: Any) -> None:
        """A dict, list, set or deque in a field that the library's own code reads: recorded by
        identity, and each element that can hold state (an array, an object; not a scalar) is
        walked, so an nnx `Sequential`'s layers are followed but a cache filling is no change."""
        if not self.once(value, "library container"):
            return
        self.guard(read, value)  # content too: a walk decides whether what changed counts
        entry = _Entry(at.key, at.what, "dep", _Ident(value, self.capture))
        self._fill(entry, value)
        self.entries.append(entry)
        items = (list(value.items()) if isinstance(value, dict) else list(enumerate(value)))
        for i, (k, v) in enumerate(items):
            if type(v) in _EXACT_SCALARS or v is None:
                continue
            short = isinstance(k, (str, int)) and len(repr(k)) < 40
            label = f"[{k!r}]" if short else f"[#{i}]"
            self.visit(v, At(at.key + (label,), _What(f"item {label} of ", at.what), at.trail,
                             at.names, at.reads))

    def once(self, obj: Any, tag: Any = None) -> bool:
        """True the first time (obj, tag) is expanded in this walk."""
        k = (id(obj), id(tag))
        if k in self._done:
            return False
        self._done[k] = (obj, tag)
        return True

    def record(self, at: At, kind: str, token: Any, value: Any,
               read: _In | Callable[[], Any] | None = None) -> _Entry:
        self.guard(read, value)
        entry = _Entry(at.key, at.what, kind, token)
        self._fill(entry, value)
        self.entries.append(entry)
        return entry

    def _fill(self, entry: _Entry, value: Any, text: Any = None) -> None:
        if self.capture:
            token = entry.token  # reuse an array's digest rather than hashing twice
            digest = token[4] if isinstance(token, tuple) and token[:1] == ("ndarray",) else None
            try:
                entry.text = _short_later(value, digest=digest) if text is None else text
            except Exception:
                entry.text = f"<{type(value).__name__} object>"
            if self._keep_values:
                entry.value = value
        else:
            entry.value = value

    def visit(self, value: Any, at: At, kind: str = "dep",
              read: _In | Callable[[], Any] | None = None, place: tuple | None = None) -> Any:
        """Record `value` at `at`, expand what it reaches, return its token.

        `read` reads the same place again (for the guards); None where the place cannot be
        rebound (a root, a bound method's function, an element of a guarded container). `place`
        names a user-level place that `DependencyRecord.sites()` can rebind.
        """
        self.guard(read, value)
        entry = _Entry(at.key, at.what, kind, place=place if self.capture else None)
        self.entries.append(entry)  # before the children, so parents come first
        try:
            entry.token = self.token(value, at)
        except Exception:  # an object that resists inspection: never trusted
            entry.token = _Unverifiable()
            self.unverifiable()
        self._fill(entry, value)
        if type(value) is str and settings.reach and value in sys.modules:
            # A string naming a loaded module (`importlib.import_module(MOD)`): the module too.
            self.module_named(value, at.down(("module named", value),
                                             _What(f"module '{value}' named by ", at.what)),
                              absent=False)
        return entry.token

    # -- tokens --------------------------------------------------------------------------------
    def token(self, value: Any, at: At) -> Any:
        cls = type(value)
        if cls in _EXACT_SCALARS:
            return _scalar_token(value)
        if self._depth >= _MAX_DEPTH:
            # Deeper than the recursion we allow (a long linked structure): unverifiable, so
            # the record conservatively reports a change.
            self.unverifiable()
            return _Unverifiable()
        self._depth += 1
        try:
            rule = _tokenizer_rule(cls)
            if rule is not None:
                return rule(self, value, at)
            return self._object_token(value, at)
        finally:
            self._depth -= 1

    def _object_token(self, value: Any, at: At) -> Any:
        cls = type(value)
        if cls.__flags__ & _HEAPTYPE and not isinstance(value, (type, types.ModuleType)):
            # An instance of a Python class can be given another class, which changes how it
            # is walked (classes and modules are walked the same whatever their metaclass).
            held = _holder(value)
            self.guard(lambda: type(held()), cls)
        rule = _expander_rule(cls)
        rule(self, value, at)
        if isinstance(value, types.MethodType):  # a fresh object per attribute access
            return ("method", _Ident(value.__func__, self.capture),
                    _Ident(value.__self__, self.capture))
        return _Ident(value, self.capture)

    def digest(self, arr: np.ndarray) -> str:
        known = self._memo.get(id(arr))
        if known is not None and known[0] is arr:
            return known[1]
        digest = _array_digest(arr)
        self._memo[id(arr)] = (arr, digest)  # holds arr: its id cannot be reused meanwhile
        return digest

    def element(self, value: Any, at: At) -> Any:
        # Plain data is folded into the container's token; anything that can be walked gets its
        # own entry so its insides are reported precisely.
        if type(value) in _EXACT_SCALARS or isinstance(
                value, _CONTAINERS + (np.ndarray, np.generic, np.dtype, jax.Array)):
            return self.token(value, at)
        return self.visit(value, at)

    def subclass_parts(self, value: Any, at: At) -> None:
        """The class and fields of an instance of a subclass of a builtin or of ndarray."""
        if not settings.reach or not self.once(value, "subclass"):
            return
        cls = type(value)
        self.visit(cls, at.down("__class__", _What("class of ", at.what)))
        if not isinstance(value, np.ndarray) and not self.is_user_class(cls):
            return
        held = _holder(value)
        fields = _instance_dict(value)
        self.guard(lambda: tuple(_instance_dict(_live(held()))), None,
                   check=_equals(tuple(fields)))
        source, reader = _dict_of(held)
        for name, field in list(fields.items()):
            self.visit(field, at.down(("field", name), _What(f"field '{name}' of ", at.what)),
                       read=_In(source, reader, name))

    # -- user functions ------------------------------------------------------------------------
    def walk_function(self, fn: types.FunctionType, at: At) -> None:
        """Code, globals, builtins, cells, defaults and attributes of a user function."""
        trail = at.trail + (fn.__qualname__,)
        via = " -> ".join(trail)
        code = fn.__code__
        names = _code_names(code)
        if settings.reach:
            # Identifier string constants are names too (`globals()["SCALE"]`, issue #11).
            names = names + _code_strings(code)
        at = At(at.key, at.what, trail, names)
        self.functions.append(fn)
        if settings.reach:
            self.user_names.update(dict.fromkeys(names))
        self._note_code(code)
        held = _holder(fn)
        self.record(at.down("__code__", f"code of {via}"), "dep", _Ident(code, self.capture),
                    code, read=lambda: held().__code__)
        namespace = fn.__globals__  # read-only attributes, like __builtins__ and __closure__
        module = namespace.get("__name__", "<namespace>")
        builtin_ns = _builtins_of(fn)
        for name in names:
            desc = f"global '{name}' of module '{module}' (read by {via})"
            # Reads go through the weakly held function (never the namespace itself): a guard
            # must not keep a notebook's namespace, and the wrapped functions in it, alive.
            read = _In(id(namespace), lambda: held().__globals__, name)
            if name in namespace:
                self.visit(namespace[name], at.down(("global", name), desc), read=read,
                           place=("global", held, name))
                continue
            # Recorded so that a global defined later (shadowing a builtin, or satisfying a
            # NameError-guarded path) is seen as a change.
            self.record(at.down(("global", name), desc), "absent", _ABSENT, _ABSENT, read=read)
            read_builtin = _In(id(builtin_ns), lambda: _builtins_of(held()), name)
            if name in builtin_ns:
                self.visit(builtin_ns[name],
                           at.down(("builtin", name), f"builtin '{name}' (read by {via})"),
                           kind="builtin", read=read_builtin)
            else:
                self.guard(read_builtin, _ABSENT)
        if settings.reach:
            self._imports(code, at, via)
        for i, (var, cell) in enumerate(zip(code.co_freevars, fn.__closure__ or (), strict=True)):
            self.visit(_cell_contents(cell),
                       at.down(("cell", var), f"closure variable '{var}' of {via}"),
                       read=lambda i=i: _cell_contents(held().__closure__[i]),
                       place=("cell", held, i))
        self.visit(fn.__defaults__, at.down("__defaults__", f"default arguments of {via}"),
                   read=lambda: held().__defaults__)
        self.visit(fn.__kwdefaults__, at.down("__kwdefaults__", f"keyword defaults of {via}"),
                   read=lambda: held().__kwdefaults__)
        attrs = list(fn.__dict__.items())
        self.guard(lambda: tuple(held().__dict__), None,
                   check=_equals(tuple(k for k, _ in attrs)))
        source, fn_dict = _dict_of(held)
        for attr, value in attrs:
            if attr not in _BORING_FUNCTION_ATTRS:
                self.visit(value, at.down(("attr", attr), f"attribute '{attr}' of {via}"),
                           read=_In(source, fn_dict, attr))

    def _note_code(self, code: types.CodeType) -> None:
        stack = [code]
        while stack:
            c = stack.pop()
            if c not in self.codes:
                self.codes.add(c)
                stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))

    def _imports(self, code: types.CodeType, at: At, via: str) -> None:
        # `import m` in a function body reads sys.modules["m"] at every call: swapping the module
        # there (a test double, a reload by hand) changes what the code runs.
        for name in _imported_modules(code):
            self.module_named(name, at.down(("import", name),
                                            f"module '{name}' imported by {via}"), absent=True)
        # A string naming a module (`importlib.import_module("m")`) reads it there too.
        for name in _modules_named_by_strings(code):
            self.module_named(name, at.down(("module named", name),
                                            f"module '{name}' named by a string in {via}"),
                              absent=True)

    def module_named(self, name: str, at: At, *, absent: bool) -> None:
        """`sys.modules[name]`, read by an import or named by a string; a module not there is
        recorded as absent when `absent` (an import made later is a change)."""
        modules = sys.modules
        read = _In(id(modules), lambda: sys.modules, name)
        if name in modules:
            self.visit(modules[name], at, read=read)
        elif absent:
            self.record(at, "absent", _ABSENT, _ABSENT, read=read)

    # -- attributes of library objects and classes, by name ------------------------------------
    def named_attrs(self, holder: Any, at: At, visit_name: Callable[[str], None]) -> None:
        """Walk the attributes of `holder` named by the reader, and later by any user code."""
        if not settings.reach:
            for name in at.names:
                visit_name(name)
            return
        seen: set[str] = set()
        for name in at.names:
            seen.add(name)
            visit_name(name)
        self._named_holders.append((holder, at, seen, visit_name))

    def finish_names(self) -> None:
        """Walk what later-walked user code names on earlier library objects (to a fixpoint)."""
        progress = True
        while progress:
            progress = False
            i = 0
            while i < len(self._named_holders):  # the list grows while walking
                _, _, seen, visit_name = self._named_holders[i]
                for name in list(self.user_names):
                    if name not in seen:
                        seen.add(name)
                        visit_name(name)
                        progress = True
                i += 1

    # -- entry point ---------------------------------------------------------------------------
    def walk(self, origin: Any, roots: tuple[tuple[str, Any], ...] = ()) -> None:
        config = out_of_key_config()
        self.guard(out_of_key_config, config, check=_equals(config))
        # Guarded above as a whole; its flags are immutable values, described when shown.
        entry = _Entry(("jax config",), "JAX configuration", "config", config)
        self._fill(entry, config, text=_Later(_short, config))
        self.entries.append(entry)
        self.visit(origin, At(("origin",), "traced callable", (), ()))
        for label, value in roots:
            self.visit(value, At(("root", label), label, (), ()))
        self.finish_names()


# -- tokenizers: plain data ----------------------------------------------------------------------

def _scalar_subclass(w: Walker, value: Any, at: At) -> Any:
    # bool/int/float/str subclasses, IntEnum members: the value, and (issue #11) the class's code.
    w.subclass_parts(value, at)
    return _scalar_token(value)


def _ndarray(w: Walker, value: np.ndarray, at: At) -> Any:
    if type(value) is not np.ndarray:
        w.subclass_parts(value, at)  # a masked array's mask lives in its __dict__
    return ("ndarray", _Ident(value, w.capture), value.dtype, value.shape, w.digest(value))


def _container(w: Walker, value: Any, at: At) -> Any:
    if type(value) not in _EXACT_CONTAINERS:
        w.subclass_parts(value, at)  # a NamedTuple's methods, a dict subclass's class
    depth = w._active.get(id(value))
    if depth is not None:
        return ("<cycle>", type(value), len(w._active) - depth)
    w._active[id(value)] = len(w._active)
    try:
        if isinstance(value, (dict, types.MappingProxyType)):
            items = []
            for i, (k, v) in enumerate(list(value.items())):
                short = isinstance(k, (str, int)) and len(repr(k)) < 40
                label = f"[{k!r}]" if short else f"[#{i}]"
                k_tok = w.element(k, at.down(label + ".key", _What(f"key {label} of ", at.what)))
                v_tok = w.element(v, at.down(label, _What(f"item {label} of ", at.what)))
                items.append((k_tok, v_tok))
            return (type(value), tuple(items))
        elems = [w.element(v, at.down(f"[{i}]", _What(f"item [{i}] of ", at.what)))
                 for i, v in enumerate(list(value))]
        if isinstance(value, (set, frozenset)):
            try:
                return (type(value), frozenset(elems))
            except TypeError:  # an unhashable token: fall back to order
                pass
        return (type(value), tuple(elems))
    finally:
        del w._active[id(value)]


TOKENIZERS: dict[type, Callable[[Walker, Any, At], Any]] = {
    bool: _scalar_subclass, int: _scalar_subclass, float: _scalar_subclass,
    complex: _scalar_subclass, str: _scalar_subclass, bytes: _scalar_subclass,
    np.ndarray: _ndarray,
    np.generic: lambda w, v, at: (type(v), v.tobytes()),
    np.dtype: lambda w, v, at: (np.dtype, v),
    jax.Array: lambda w, v, at: _Ident(v, w.capture),  # immutable: identity suffices
    AbstractValue: lambda w, v, at: (AbstractValue, v),  # an argument's aval in a skeleton
    tuple: _container, list: _container, dict: _container, set: _container,
    frozenset: _container, collections.deque: _container, types.MappingProxyType: _container,
    bytearray: lambda w, v, at: _buffer_token(v),
    array.array: lambda w, v, at: _buffer_token(v),
    _Environ: lambda w, v, at: (_Environ, tuple(sorted(_environ_items(v).items()))),
}
_tokenizer_rule = _rules(TOKENIZERS)


# -- expanders: things that hold code -------------------------------------------------------------

def _function(w: Walker, fn: types.FunctionType, at: At) -> None:
    if not w.once(fn):
        return
    if is_user_function(fn):
        w.walk_function(fn, at)
    else:
        _library_function(w, fn, at)


def _library_function(w: Walker, fn: types.FunctionType, at: At) -> None:
    # Not walked, but transformations (jax.vmap, jax.grad, decorators) keep the user function in
    # __wrapped__ or a closure cell: follow those.
    held = _holder(fn)
    w.guard(lambda: held().__code__, fn.__code__)  # which code decides user vs library
    wrapped = fn.__dict__.get("__wrapped__")
    read_wrapped = _In(*_dict_of(held), "__wrapped__")
    if wrapped is not None:
        w.visit(wrapped, at.down("__wrapped__", _What("function wrapped by ", at.what)),
                read=read_wrapped)
    else:
        w.guard(read_wrapped, _ABSENT, check=_is_absent_or_none)
    for i, (var, cell) in enumerate(zip(fn.__code__.co_freevars, fn.__closure__ or (),
                                        strict=True)):
        content = _cell_contents(cell)
        read = (lambda i=i: _cell_contents(held().__closure__[i]))
        if content is not _EMPTY_CELL and content is not wrapped and _follows_cell(content):
            w.visit(content, at.down(("cell", var), _What(f"closure variable '{var}' of ",
                                                          at.what)), read=read)
        else:
            # Not followed: only whether it would be (a library's cache in a cell may change at
            # every call without this being a change).
            w.guard(read, content, check=(
                lambda current, w_=wrapped: current is _EMPTY_CELL or current is w_
                or not _follows_cell(current)))
    if settings.reach:
        # Attributes holding user code: `functools.singledispatch`'s `registry` of user
        # functions, a hook a library function was given (issue #11).
        _code_bearing_fields(w, fn, at._replace(names=()))


def _method(w: Walker, value: types.MethodType, at: At) -> None:
    if w.once(value):
        w.visit(value.__func__, at.down("__func__", _What("function of ", at.what)))
        w.visit(value.__self__, at.down("__self__", _What("object bound to ", at.what)))


def _partial(w: Walker, value: Any, at: At) -> None:
    if w.once(value):
        # Read again through the object: `partial.__setstate__` and a partialmethod's attributes
        # can rebind them.
        held = _holder(value)
        for attr, label in (("func", "function of "), ("args", "arguments of "),
                            ("keywords", "keyword arguments of ")):
            w.visit(getattr(value, attr), at.down(attr, _What(label, at.what)),
                    read=lambda a=attr: getattr(held(), a))


def _static_or_classmethod(w: Walker, value: Any, at: At) -> None:
    held = _holder(value)  # calling __init__ again rebinds __func__
    w.visit(value.__func__, at.down("__func__", _What("function of ", at.what)),
            read=lambda: held().__func__)


def _property(w: Walker, value: property, at: At) -> None:
    held = _holder(value)
    for part in ("fget", "fset", "fdel"):
        w.visit(getattr(value, part), at.down(part, _What(f"{part} of ", at.what)),
                read=lambda a=part: getattr(held(), a))


def _cached_property(w: Walker, value: functools.cached_property, at: At) -> None:
    held = _holder(value)
    w.visit(value.func, at.down("func", _What("function of ", at.what)),
            read=lambda: held().func)


def _module(w: Walker, module: types.ModuleType, at: At) -> None:
    # `m.attr` patterns: every co_name of the reader that the module defines.
    if not w.once(module, at.names):
        return
    namespace = _instance_dict(module)
    source, reader = _dict_of(_holder(module))
    for name in at.names:
        read = _In(source, reader, name)
        if name in namespace:
            w.visit(namespace[name], at.down(("attr", name), _What(f"attribute '{name}' of ",
                                                                   at.what)), read=read)
        else:
            w.guard(read, _ABSENT)


def _class(w: Walker, cls: type, at: At) -> None:
    user = w.is_user_class(cls)
    held = _holder(cls)
    if not user:
        if w.once(cls, None if settings.reach else at.names):
            w.guard(lambda: is_user_class(_live(held())), user, check=_equals(user))
            _named_class_attrs(w, cls, at)
            if settings.reach:
                _abc_registry(w, cls, at)
                _pytree_functions(w, cls, at)
        return
    if not w.once(cls):
        return
    w.guard(lambda: is_user_class(_live(held())), user, check=_equals(user))
    # Reassigning __bases__ changes what every attribute lookup resolves to.
    w.record(at.down("__mro__", _What("base classes of ", at.what)), "dep",
             tuple(_Ident(k, w.capture) for k in cls.__mro__), cls.__mro__,
             read=lambda: held().__mro__)
    for klass in cls.__mro__:
        if klass is object:
            continue
        k_held = _holder(klass)
        if klass is not cls:
            k_user = w.is_user_class(klass)
            w.guard(lambda k=k_held: is_user_class(_live(k())), k_user, check=_equals(k_user))
            if not k_user:
                continue  # library bases: their attributes named by the reader, below
        attrs = list(klass.__dict__.items())
        w.guard(lambda k=k_held: tuple(k().__dict__), None,
                check=_equals(tuple(name for name, _ in attrs)))
        for name, attr in attrs:
            if name not in _BORING_CLASS_ATTRS:
                w.visit(attr, at.down((f"class {klass.__qualname__}", name),
                                      _What(f"attribute '{name}' of class "
                                            f"'{klass.__qualname__}' (", at.what, ")")),
                        read=_In(("class", id(klass)), lambda k=k_held: k().__dict__, name),
                        place=("class", k_held, name))
    meta = type(cls)
    if settings.reach and meta is not type:
        # `C.scale` can come from the metaclass (issue #11).
        w.visit(meta, at.down("__metaclass__", _What("metaclass of ", at.what)),
                read=lambda: type(held()))
    if settings.reach:
        _abc_registry(w, cls, at)
        _pytree_functions(w, cls, at)
    _named_class_attrs(w, cls, at)


def _registration_bears_code(fn: Any, cls: type) -> bool:
    """`_bears_code(fn)`, where the registered class itself (which JAX's own functions keep in a
    closure cell, and which the walk records anyway) does not count."""
    if isinstance(fn, types.FunctionType) and not is_user_function(fn):
        wrapped = fn.__dict__.get("__wrapped__")
        return ((wrapped is not None and _bears_code(wrapped))
                or any(_bears_code(content) for c in fn.__closure__ or ()
                       if (content := _cell_contents(c)) is not cls))
    return _bears_code(fn)


def _abc_registry(w: Walker, cls: type, at: At) -> None:
    """The virtual subclasses of an ABC: `Fast.register(Thing)` changes what
    `isinstance(thing, Fast)` says, with no attribute of either class rebound."""
    if not isinstance(cls, abc.ABCMeta):
        return
    refs = _abc_registered(cls)
    held = _holder(cls)
    # The registry keeps weak references, one per registration, for as long as it lasts: the
    # same set of reference objects is the same set of registrations (held here, so their ids
    # cannot be reused; holding a reference does not keep its class alive).
    w.guard(lambda: _abc_registered(_live(held())), None,
            check=lambda current, _refs=refs: current == _refs)
    token = frozenset(_Ident(c, w.capture) for r in refs if (c := r()) is not None and c is not cls)
    w.record(at.down("__abc_registry__", _What("virtual subclasses registered with ", at.what)),
             "dep", token, refs)


def _abc_registered(cls: type) -> frozenset:
    """The registrations that decide `isinstance(x, cls)`: those of `cls` and of its subclasses
    (a class registered with a subclass is an instance of `cls` too), with the subclasses
    themselves, as weak references (equal while their referents live and are the same)."""
    found: set = set()
    stack, seen = [cls], set()
    while stack:
        klass = stack.pop()
        if id(klass) in seen:
            continue
        seen.add(id(klass))
        if isinstance(klass, abc.ABCMeta):
            found.update(_abc_dump(klass)[0])
        found.add(weakref.ref(klass))
        stack.extend(type.__subclasses__(klass))
    return frozenset(found)


# CPython's C implementation of `abc` keeps the registry out of the class's attributes.
_abc_dump = getattr(abc, "_get_dump", lambda cls: (getattr(cls, "_abc_registry", ()),))


def _pytree_functions(w: Walker, cls: type, at: At) -> None:
    """The flatten and unflatten functions `cls` is registered with as a pytree node: JAX
    calls them on every argument of the class (an unflatten reading a global decides what the
    function sees)."""
    functions = pytree_node_functions(cls)
    if functions is None:
        return
    if not any(_registration_bears_code(f, cls) for f in functions):
        # JAX's own functions (`register_dataclass`, a library's registrations): nothing of the
        # user's, and a registration cannot change.
        return
    # A registration cannot be changed once made: nothing to read again.
    for label, fn in zip(("flatten", "unflatten"), functions, strict=True):
        w.visit(fn, at.down(("pytree", label),
                            _What(f"pytree {label} function registered for ", at.what)))


def _named_class_attrs(w: Walker, cls: type, at: At) -> None:
    """Attributes the reader names, resolved through the MRO (library classes)."""
    held = _holder(cls)
    # A user class's user bases are recorded wholesale (`_class`); a library class's are not (a
    # library class can subclass a user class, or a base can gain a user attribute).
    wholesale = w.is_user_class(cls)
    # The names found nowhere along the MRO (most of them: any user code's names are looked up
    # here) share one guard, added to while the walk runs; each name found has its own.
    absent: list[str] = []
    if w.guards is not None:
        mro = cls.__mro__
        w.guard(lambda: held().__mro__, None,
                check=_lacks(tuple(map(w.guards.ident, mro)), absent))

    def visit_name(name: str) -> None:
        found = _resolve(cls, name)
        if found is _ABSENT:
            absent.append(name)
            return
        # Where the lookup ends now: class, attribute, user or not.
        w.guard(lambda n=name: _resolve(held(), n), found, check=_same_resolution(found))
        klass, attr, user = found
        if user and wholesale:
            return  # recorded by `_class` with the rest of the user class's attributes
        w.visit(attr, at.down(("resolve", name),
                              _What(f"attribute '{name}' of class '{cls.__qualname__}' (",
                                    at.what, ")")))

    w.named_attrs(cls, at, visit_name)


def _custom_rule(w: Walker, value: Any, at: At) -> None:
    # The rules live in the instance __dict__ (jvp appears with defjvp, fwd/bwd with defvjp).
    # Only these fields: update_wrapper also copies the wrapped object's __dict__ there.
    if not w.once(value):
        return
    fields = _instance_dict(value)
    source, namespace = _dict_of(_holder(value))
    for name in _CUSTOM_RULE_FIELDS:
        read = _In(source, namespace, name)
        if name in fields:
            w.visit(fields[name], at.down(("field", name), _What(f"field '{name}' of ", at.what)),
                    read=read)
        else:
            w.guard(read, _ABSENT)


def _weakref(w: Walker, ref: weakref.ref, at: At) -> None:
    # `REF().scale`: the referent is what the code reads (None once it is freed).
    if settings.reach and w.once(ref):
        held = _holder(ref)
        w.visit(ref(), at.down("referent", _What("referent of ", at.what)),
                read=lambda: _live(held())())


def _context_var(w: Walker, var: contextvars.ContextVar, at: At) -> None:
    # `VAR.get()`: its value in the context of the thread that walks (see README).
    if settings.reach and w.once(var):
        held = _holder(var)
        w.visit(var.get(_ABSENT), at.down("value", _What("value of ", at.what)),
                read=lambda: _live(held()).get(_ABSENT))


def _nothing(w: Walker, value: Any, at: At) -> None:
    """C-level callables and slots: nothing behind them to walk."""


def _builtin_method(w: Walker, value: Any, at: At) -> None:
    # `getter = CONFIG.get`, `push = STATE.append`: the object it is bound to is what a call
    # reads (a module's C function is bound to its module: nothing of the user's there).
    owner = getattr(value, "__self__", None)
    if (settings.reach and owner is not None and not isinstance(owner, types.ModuleType)
            and w.once(value)):
        w.visit(owner, at.down("__self__", _What("object bound to ", at.what)))


def _object(w: Walker, obj: Any, at: At) -> None:
    cls = type(obj)  # guarded by `_object_token` where it could be reassigned
    user = w.is_user_class(cls)
    c_held = _holder(cls)
    if user:
        if w.once(obj):
            w.guard(lambda: is_user_class(_live(c_held())), user, check=_equals(user))
            w.visit(cls, at.down("__class__", _What("class of ", at.what)))
            _fields(w, obj, at)
        return
    # Library object: what any user code names, plus __wrapped__ (jax.jit), plus (issue #11)
    # every field of a data-like object and every field holding user code.
    if not w.once(obj, None if settings.reach else at.names):
        return
    w.guard(lambda: is_user_class(_live(c_held())), user, check=_equals(user))
    _named_class_attrs(w, cls, at)
    fields = _instance_dict(obj)
    held = _holder(obj)
    source, reader = _dict_of(held)
    if settings.reach and _is_data_like(obj):
        _fields(w, obj, at)
    else:
        visited: set[str] = set()

        # The keys of the instance dict are guarded below (`_code_bearing_fields`), so a name
        # the library's code reads needs no guard of its own while it is absent.
        keys_guarded = settings.reach and "__wrapped__" not in fields

        def visit_field(name: str, reads: tuple[str, ...] = (), by_library: bool = False) -> None:
            if name in visited:
                return
            visited.add(name)
            read = _In(source, reader, name)
            if name in fields:
                here = at.down(("field", name), _What(f"field '{name}' of ", at.what))
                if by_library and type(fields[name]) in _LIBRARY_CONTAINERS:
                    w.library_container(fields[name], here._replace(reads=reads), read)
                else:
                    w.visit(fields[name], here._replace(reads=reads), read=read)
                return
            if not (by_library and keys_guarded):
                w.guard(read, _ABSENT)
            slot = _slot_named(cls, name) if settings.reach else None
            if slot is not None:  # a library class with __slots__ (issue #11)
                klass, descriptor = slot
                w.visit(_slot_value(descriptor, obj, klass),
                        at.down(("slot", klass.__qualname__, name),
                                _What(f"slot '{name}' of ", at.what))._replace(reads=reads),
                        read=lambda: _slot_value(descriptor, _live(held()), klass))

        def visit_name(name: str) -> None:
            visit_field(name)
            if settings.reach and "__wrapped__" not in fields:
                # The library code behind this name reads fields of its own (session 12: an
                # nnx module's `__call__` reads `self.kernel`, whose `value` property reads
                # its `_raw_value`): they are followed too, and the names that code reads are
                # followed on what they hold.
                reads = w.library_reads(cls, name)
                for field in reads:
                    visit_field(field, reads, by_library=True)

        if settings.reach and "__wrapped__" not in fields:
            # Names the library code of the object holding this one reads, and the methods user
            # code runs without naming them (a call, an index, a loop). Not for a wrapper (a
            # `jaxworld.wrap`, an `eqx.filter_jit`): it is what it wraps, and its own fields
            # are its caches.
            for name in at.reads:
                visit_field(name, by_library=True)
                reads = w.library_reads(cls, name)
                for field in reads:
                    visit_field(field, reads, by_library=True)
            for name in _PROTOCOL:
                for field in (reads := w.library_reads(cls, name)):
                    visit_field(field, reads, by_library=True)
        w.named_attrs(obj, at, visit_name)
        if settings.reach and "__wrapped__" not in fields:
            if at.reads:
                # Found by the library's own code: the fields that code reads are followed
                # above; of the rest, only which there are (a field added later is looked at).
                keys = tuple(fields)
                w.guard(lambda: tuple(_instance_dict(_live(held()))), None, check=_equals(keys))
            else:
                # (An object with __wrapped__, such as `jax.jit(f)`, holds its code there.)
                _code_bearing_fields(w, obj, at)
    wrapped = fields.get("__wrapped__")
    if "__wrapped__" not in at.names:
        read = _In(source, reader, "__wrapped__")
        if wrapped is not None:
            w.visit(wrapped, at.down("__wrapped__", _What("function wrapped by ", at.what)),
                    read=read)
        else:
            w.guard(read, _ABSENT, check=_is_absent_or_none)


# Containers in a library object's fields that only its own code reads: its caches and registries
# as often as its state (`Logger._cache`, filled by the first call at each level, would make the
# first trace of a function that logs run twice). Their membership is not recorded, only what
# they hold that can hold state (`Walker.library_container`).
_LIBRARY_CONTAINERS = frozenset({dict, list, set, collections.deque})

# Methods user code runs on an object without naming them.
_PROTOCOL = ("__call__", "__getitem__", "__iter__", "__len__", "__contains__", "__jax_array__",
             "__array__", "__float__", "__int__", "__index__", "__bool__")
_MAX_READS = 512  # names collected for one library method and the methods it calls on `self`


def _library_code(attr: Any) -> types.CodeType | None:
    """The code of a library function, method or property getter found on a class."""
    if isinstance(attr, (staticmethod, classmethod)):
        attr = attr.__func__
    elif isinstance(attr, property):
        attr = attr.fget
    elif isinstance(attr, functools.cached_property):
        attr = attr.func
    if isinstance(attr, types.FunctionType) and not is_user_function(attr):
        return attr.__code__
    return None


def _library_reads(cls: type, name: str, memo: dict) -> tuple[str, ...]:
    """The attribute names the library code behind `cls.name` can read (on `self` among others),
    through the library methods of `cls` it names in turn; () when `cls.name` is not library code.

    `memo`: the class's memo (`_reads_memo`), checked against the class as it is now
    (`Walker.library_reads`).
    """
    known = memo.get(name)
    if known is not None:
        return known
    names: dict[str, None] = {}
    stack = [name]
    while stack and len(names) < _MAX_READS:
        code = _library_code(_resolve_attr(cls, stack.pop()))
        if code is None:
            continue
        for read in _code_names(code):
            if read not in names:
                names[read] = None
                stack.append(read)
    result = memo[name] = tuple(names)
    return result


def _class_fingerprint(cls: type) -> tuple[tuple, tuple]:
    """What `_library_reads` depends on, by id: each class along the MRO, its attribute names and
    values, and the code of those that are functions (code can be reassigned in place); and the
    objects those ids are of (to be kept, so that no id is reused meanwhile)."""
    values = tuple((klass, *klass.__dict__.values(),
                    *(v.__code__ for v in klass.__dict__.values()
                      if isinstance(v, types.FunctionType)))
                   for klass in cls.__mro__)
    names = tuple(tuple(klass.__dict__) for klass in cls.__mro__)
    return (names, tuple(tuple(map(id, v)) for v in values)), values


def _class_attrs(mro: tuple[type, ...]) -> tuple:
    """The attribute values along `mro`: a guard that a class's code is still the same compares
    their ids (at C speed), keeping them."""
    return tuple(tuple(klass.__dict__.values()) for klass in mro)


def _resolve_attr(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


_reads_memo = TypeMemo(lambda cls: {})


def _code_bearing_fields(w: Walker, obj: Any, at: At) -> None:
    """Fields of a library object that hold user code, whether or not any code names them.

    Guarded by the identity of every field (at C speed for the instance dict), plus a second look
    into the mutable ones (a list that could gain a user function in place).
    """
    named = frozenset(at.names) | {"__wrapped__"}
    held = _holder(obj)
    fields = _instance_dict(obj)
    keys = tuple(fields)
    w.guard(lambda: tuple(_instance_dict(_live(held()))), None, check=_equals(keys))
    source, reader = _dict_of(held)
    slots = {name: value for name, value in _fields_of(obj) if name not in fields}
    for name, value in list(fields.items()) + list(slots.items()):
        if name in named:
            continue  # walked by name
        if name in slots:
            read = (lambda n=name: dict(_fields_of(_live(held()))).get(n, _ABSENT))
        else:
            read = _In(source, reader, name)
        if _bears_code(value):
            w.visit(value, at.down(("holds", name), _What(f"field '{name}' of ", at.what)),
                    read=read)
        elif isinstance(value, (list, dict, set)) or _is_data_like(value):
            w.guard(read, value, check=lambda current, v=value: current is v and not _bears_code(v))
        else:
            w.guard(read, value)  # by identity (and contents, for containers)


def _slot_named(cls: type, name: str) -> tuple[type, Any] | None:
    """(class, descriptor) of the slot `name` along `cls`'s MRO, if there is one."""
    slots = _slots_of(cls)
    return slots.get(name) if slots else None


def _find_slots(cls: type) -> dict[str, tuple[type, Any] | None]:
    found: dict[str, tuple[type, Any] | None] = {}
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in [slots] if isinstance(slots, str) else slots:
            if name not in found:
                descriptor = klass.__dict__.get(name)
                found[name] = (klass, descriptor) if hasattr(descriptor, "__get__") else None
    return found


# A class's slots are fixed when it is made (`__slots__` assigned later declares none).
_slots_of = TypeMemo(_find_slots)


def _fields(w: Walker, obj: Any, at: At) -> None:
    """Instance __dict__ and __slots__ of an object, each field recorded."""
    held = _holder(obj)
    fields = list(_instance_dict(obj).items())
    w.guard(lambda: tuple(_instance_dict(_live(held()))), None,
            check=_equals(tuple(name for name, _ in fields)))
    source, reader = _dict_of(held)
    for name, value in fields:
        w.visit(value, at.down(("field", name), _What(f"field '{name}' of ", at.what)),
                read=_In(source, reader, name), place=("field", held, name))
    for klass in type(obj).__mro__:
        k_held = _holder(klass)
        slots = klass.__dict__.get("__slots__", ())
        w.guard(lambda k=k_held: k().__dict__.get("__slots__", ()), slots)
        for name in [slots] if isinstance(slots, str) else slots:
            descriptor = klass.__dict__.get(name)
            w.guard(lambda k=k_held, n=name: k().__dict__.get(n), descriptor)
            if name in ("__dict__", "__weakref__") or not hasattr(descriptor, "__get__"):
                continue
            w.visit(_slot_value(descriptor, obj, klass),
                    at.down(("slot", klass.__qualname__, name),
                            _What(f"slot '{name}' of ", at.what)),
                    read=lambda d=descriptor, k=k_held: _slot_value(d, _live(held()), k()),
                    place=("field", held, name))


EXPANDERS: dict[type, Callable[[Walker, Any, At], None]] = {
    types.FunctionType: _function,
    types.MethodType: _method,
    functools.partial: _partial,
    functools.partialmethod: _partial,
    staticmethod: _static_or_classmethod,
    classmethod: _static_or_classmethod,
    property: _property,
    functools.cached_property: _cached_property,
    types.ModuleType: _module,
    type: _class,
    jax.custom_jvp: _custom_rule,
    jax.custom_vjp: _custom_rule,
    weakref.ref: _weakref,
    contextvars.ContextVar: _context_var,
    types.BuiltinFunctionType: _builtin_method,
    types.MethodWrapperType: _builtin_method,
    types.WrapperDescriptorType: _nothing,
    types.MethodDescriptorType: _nothing,
    types.GetSetDescriptorType: _nothing,
    types.MemberDescriptorType: _nothing,
    object: _object,
}
_expander_rule = _rules(EXPANDERS)
