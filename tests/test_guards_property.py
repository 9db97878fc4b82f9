"""Guards and walk agree (issue #11, "exact guards"): a property test over object graphs.

A record's guards answer "unchanged" without walking; the walk is the definition of a change. For
generated object graphs (nested lists, dicts, sets of objects, user objects, NumPy arrays, closures)
read by a function, and a generated mutation of them, the guards must never hold while a walk finds
a change. (The test suite turns on `settings.verify_guards`, so `changes()` itself asserts it; this
test checks the property explicitly as well, and that a real change is found.)
"""

from __future__ import annotations

import gc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxworld._deps import DependencyRecord

from .helpers import notebook
from .reach_helpers import LIBRARY_VARIABLE, library_code

SOURCE = """
class Obj:
    def __init__(self, value):
        self.value = value
    def __hash__(self):
        return id(self)

def f(x):
    return x * len(STATE["items"]) + WEIGHTS[0] + sum(o.value for o in MEMBERS) + CFG.value
"""

leaf = st.one_of(st.integers(-3, 3), st.floats(-2, 2, allow_nan=False), st.text(max_size=3))
data = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=3)),
    max_leaves=8)

MUTATIONS = ("nothing", "rebind-equal", "append", "edit-array", "replace-member",
             "rebind-field", "nest-in-place", "swap-members-same-count")


def build(ns: dict, items, n_members: int) -> None:
    Obj = ns["Obj"]
    ns["STATE"] = {"items": list(items) if isinstance(items, list) else [items]}
    ns["WEIGHTS"] = np.arange(3.0)
    ns["MEMBERS"] = {Obj(float(i)) for i in range(n_members)}
    ns["CFG"] = Obj(1.0)


def mutate(ns: dict, kind: str, value) -> None:
    Obj = ns["Obj"]
    if kind == "rebind-equal":
        ns["STATE"] = dict(ns["STATE"])  # an equal value bound anew: not a change
    elif kind == "append":
        ns["STATE"]["items"].append(value)
    elif kind == "edit-array":
        ns["WEIGHTS"][0] += 1.0
    elif kind == "replace-member":
        # Free a member and add a new one: CPython often gives the new one the freed id.
        if ns["MEMBERS"]:
            ns["MEMBERS"].pop()
        gc.collect()
        ns["MEMBERS"].add(Obj(5.0))
    elif kind == "swap-members-same-count":
        members = ns["MEMBERS"]
        n = len(members)
        members.clear()
        gc.collect()
        members.update(Obj(float(i)) for i in range(n))
    elif kind == "rebind-field":
        ns["CFG"].value = 2.0
    elif kind == "nest-in-place":
        items = ns["STATE"]["items"]
        if items and isinstance(items[0], list):
            items[0].append(value)
        else:
            items.insert(0, [value])


@settings(max_examples=60, deadline=None)
@given(items=data, n_members=st.integers(0, 3), kind=st.sampled_from(MUTATIONS), value=leaf)
def test_guards_never_hold_when_a_walk_sees_a_change(items, n_members, kind, value):
    ns = notebook(SOURCE)
    build(ns, items, n_members)
    rec = DependencyRecord.capture(ns["f"])
    mutate(ns, kind, value)
    held = rec._guards_hold()
    walked = rec._walk_changes(ns["f"], None)[0]
    assert not (held and walked), f"guards held but the walk found {walked}"
    if kind in ("append", "edit-array", "rebind-field", "nest-in-place") or (
            kind == "replace-member") or (kind == "swap-members-same-count" and n_members):
        assert walked, f"mutation {kind!r} was not seen"
    if kind in ("nothing", "rebind-equal"):
        assert walked == []


def test_a_set_whose_members_are_freed_and_ids_reused_is_a_change():
    # The guard of a set compares its members' ids; it must keep them alive (issue #11).
    ns = notebook(SOURCE)
    build(ns, [1], 2)
    rec = DependencyRecord.capture(ns["f"])
    before = {id(o) for o in ns["MEMBERS"]}
    mutate(ns, "swap-members-same-count", None)
    assert not rec._guards_hold()
    assert rec.changes(), "swapped set members were not seen"
    del before  # the ids may or may not have been reused: either way the change is seen



def test_the_set_guard_keeps_its_members_alive():
    # Members with nothing else guarding them: only the set's own check compares them, by id. If
    # the check let them die, a new member at a freed address would pass as the old one.
    import weakref

    from jaxworld._deps._guards import _content_checker

    class Member:
        __slots__ = ("__weakref__",)

        def __hash__(self):
            return 0

    members = {Member() for _ in range(2)}
    check = _content_checker(members, 0)
    refs = [weakref.ref(m) for m in members]
    members.clear()
    gc.collect()
    assert all(r() is not None for r in refs), "the set guard let its members be freed"
    members.update(Member() for _ in range(2))
    assert not check(members)


def _assert_agree(walked: list, held: bool, kind: str, is_change: bool) -> None:
    """Guards never hold while a walk sees a change; a change is seen, a no-op is none."""
    assert not (held and walked), f"guards held but the walk found {walked}"
    if is_change:
        assert walked, f"mutation {kind!r} was not seen"
        assert not held
    else:
        assert walked == [], f"{kind!r} is no change, the walk found {walked}"


# -- Containers, buffers and references the walk reads since session 11 -------------------------

MORE_SOURCE = """
class Obj:
    def __init__(self, value):
        self.value = value

def g(x):
    return x * (len(QUEUE) + TABLE[0] + NUMBERS[0] + len(PROXY) + REF().value + LOCAL.value
                + VAR.get())
"""

MORE_MUTATIONS = {
    # kind: (is it a change?, mutation)
    "nothing": (False, lambda ns, v: None),
    "deque-rebound-equal": (False, lambda ns, v: ns.update(QUEUE=type(ns["QUEUE"])(ns["QUEUE"]))),
    "deque-append": (True, lambda ns, v: ns["QUEUE"].append(v)),
    "deque-edit-nested": (True, lambda ns, v: ns["QUEUE"].appendleft([v])),
    "bytearray-edit": (True, lambda ns, v: ns["TABLE"].__setitem__(0, (ns["TABLE"][0] + 1) % 256)),
    "array-edit": (True, lambda ns, v: ns["NUMBERS"].__setitem__(0, ns["NUMBERS"][0] + 1.0)),
    "proxied-dict-edit": (True, lambda ns, v: ns["_proxied"].__setitem__("new", v)),
    "referent-edit": (True, lambda ns, v: setattr(ns["HELD"], "value", ns["HELD"].value + 1)),
    # (`del`, not `pop`: what a mutation returns is alive while the walk runs.)
    "referent-freed": (True, lambda ns, v: (ns.__delitem__("HELD"), gc.collect())),
    "thread-local-edit": (True, lambda ns, v: setattr(ns["LOCAL"], "value", 7.0)),
    "context-variable-set": (True, lambda ns, v: ns["VAR"].set(9.0)),
}


@settings(max_examples=60, deadline=None)
@given(items=st.lists(data, max_size=3), size=st.integers(1, 5),
       kind=st.sampled_from(sorted(MORE_MUTATIONS)), value=leaf)
def test_guards_and_walk_agree_on_deques_buffers_proxies_and_references(items, size, kind, value):
    import array
    import collections
    import contextvars
    import threading
    import types
    import weakref

    ns = notebook(MORE_SOURCE)
    ns["QUEUE"] = collections.deque(items)
    ns["TABLE"] = bytearray(range(size))
    ns["NUMBERS"] = array.array("d", [float(i) for i in range(size)])
    ns["_proxied"] = {"k": 1.0}
    ns["PROXY"] = types.MappingProxyType(ns["_proxied"])
    ns["HELD"] = ns["Obj"](1.0)
    ns["REF"] = weakref.ref(ns["HELD"])
    ns["LOCAL"] = threading.local()
    ns["LOCAL"].value = 1.0
    ns["VAR"] = contextvars.ContextVar("var", default=1.0)
    rec = DependencyRecord.capture(ns["g"])
    is_change, mutation = MORE_MUTATIONS[kind]
    # In a copy of the current context: a ContextVar set here leaves the test's context alone.
    walked, held = contextvars.copy_context().run(
        lambda: (mutation(ns, value), rec._walk_changes(ns["g"], None)[0],
                 rec._guards_hold())[1:])
    _assert_agree(walked, held, kind, is_change)


# -- Library state, registries and bound methods the walk reads since session 12 ----------------

LIBRARY_SOURCE = "import numpy as np\n" + LIBRARY_VARIABLE + """
class Layer:
    def __init__(self, mean, scale):
        self.mean = np.asarray(mean)
        self.weight = Variable(scale)
    def __call__(self, x):
        return (x - self.mean) * self.weight.value
"""

STATE_SOURCE = """
import abc
class Fast(abc.ABC):
    pass
class Thing:
    pass
def h(x):
    return (LAYER(x).sum() + CHAIN["k"] + SETTING("k")
            + (1.0 if isinstance(THING, Fast) else 0.0))
"""


def _library_layer_module():
    return library_code(LIBRARY_SOURCE)


STATE_MUTATIONS = {
    # kind: (is it a change?, mutation)
    "nothing": (False, lambda ns, v: None),
    "array-edited": (True, lambda ns, v: ns["LAYER"].mean.__setitem__(0, v + 10.0)),
    "array-rebound": (True, lambda ns, v: setattr(ns["LAYER"], "mean", ns["LAYER"].mean + 1.0)),
    "slot-set-through-property": (True, lambda ns, v: setattr(ns["LAYER"].weight, "value",
                                                               v + 10.0)),
    "slot-rebound-equal": (False, lambda ns, v: setattr(
        ns["LAYER"].weight, "value", ns["LAYER"].weight.value)),
    "library-method-replaced": (True, lambda ns, v: setattr(
        type(ns["LAYER"]), "__call__", lambda self, x: x * v)),
    "chain-map-edited": (True, lambda ns, v: ns["CHAIN"].maps[1].__setitem__("k", v + 10.0)),
    "bound-dict-edited": (True, lambda ns, v: ns["_settings"].__setitem__("k", v + 10.0)),
    "abc-registered": (True, lambda ns, v: ns["Fast"].register(ns["Thing"])),
    "unrelated-field-added": (False, lambda ns, v: setattr(ns["LAYER"], "note", "a note")),
}


@settings(max_examples=60, deadline=None)
@given(mean=st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=4),
       scale=st.floats(-2, 2, allow_nan=False), kind=st.sampled_from(sorted(STATE_MUTATIONS)),
       value=st.floats(-2, 2, allow_nan=False))
def test_guards_and_walk_agree_on_library_state_registries_and_bound_methods(mean, scale, kind,
                                                                             value):
    import collections

    lib = _library_layer_module()  # a fresh library class per example: replacing a method stays
    ns = notebook(STATE_SOURCE)
    ns["LAYER"] = lib["Layer"](mean, scale)
    ns["CHAIN"] = collections.ChainMap({}, {"k": 1.0})
    ns["_settings"] = {"k": 2.0}
    ns["SETTING"] = ns["_settings"].get
    ns["THING"] = ns["Thing"]()
    rec = DependencyRecord.capture(ns["h"])
    assert rec.verifiable
    is_change, mutation = STATE_MUTATIONS[kind]
    mutation(ns, value)
    walked = rec._walk_changes(ns["h"], None)[0]
    held = rec._guards_hold()
    _assert_agree(walked, held, kind, is_change)
