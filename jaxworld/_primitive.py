"""The `world_call` primitive: its definition, every rule and deriver, and one registration block.

Read top to bottom, this file is the whole primitive (modelled on JAX's ``cond_p`` in
`jax/_src/lax/control_flow/conditionals.py`): the primitive and `bind`; then one section per
transformation, each with its *deriver* (a pure function of a parent jaxpr and hashable
parameters, returning the derived jaxprs and their metadata) beside the *rule* that uses it; and
at the end the block that fills every JAX table (impl, abstract eval, typecheck, jvp, linearize,
transpose, vmap, DCE, both partial evaluations, lowering) and `DERIVERS`.

`world_call` binds an `OpaqueClosure` (param ``closure``). Every rule that transforms the closure
binds `world_call` again on a *derived* closure (`OpaqueClosure.derive`, cached on the parent).
That is how opacity survives to any order: ``jax.hessian`` of a wrapped function is a handful of
`world_call` equations whose closures remember how they were derived, never the function's own
primitives. `DERIVERS` maps a transformation's name to its deriver; `_closure.derive` uses it
both for a first derivation and when a stale derived closure is derived again from a fresh root.

Rules use the closure *as bound*, never a fresher one: a computation runs entirely in the world it
started in. Refreshing one closure of a computation on its own — say the tangent closure of a
linearization, after an `advance()` by another thread, or when a plain `jax.vjp` pullback made
before a change is called after one — feeds the new world's closure residuals computed by the old
world's, an answer of no world (tests/test_threads.py). The new world is picked up where a
computation starts: `jaxworld.wrap`'s call (`_Entry.current`), `OpaqueClosure.__call__`,
`jaxworld.vjp`'s pullback, and the `jax.jit` re-trace that a relevant advance forces.

This module sits at the bottom of the import graph, below `_closure` (see `_validity`): it imports
no other jaxworld module than `_compat`, and reaches a closure's derivations through the closure
it is given.

Compare `jax/_src/lax/eval_jaxpr.py` (a minimal call primitive) and `jit_p` in `jax/_src/pjit.py`
(the full-featured one) for the JAX side of each rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jax import tree_util

from ._caches import for_lowering, note_use
from ._compat import (
    ClosedJaxpr,
    DropVar,
    JaxprTracer,
    JaxprTypeError,
    PartialVal,
    Primitive,
    ValAccum,
    Zero,
    backward_pass,
    batch_jaxpr,
    closed_call_partial_eval_custom_rule,
    closed_jaxpr_partial_eval_custom,
    current_source_info,
    current_trace,
    custom_partial_eval_rules,
    custom_typechecks,
    dce_jaxpr,
    dce_rules,
    eqn_effects,
    fancy_primitive_batchers,
    fancy_transposes,
    instantiate_zeros,
    ir_consts,
    is_eval_trace,
    jaxpr_subcomp,
    jvp_jaxpr,
    linearize_jaxpr,
    moveaxis,
    new_eqn_recipe,
    new_jaxpr_eqn,
    partial_eval_jaxpr_custom_rules,
    partial_eval_jaxpr_nounits,
    positional_effects,
    primitive_jvps,
    primitive_linearizations,
    project_accums,
    register_lowering,
    trace_to_jaxpr_dynamic,
    typecompat,
    typeof,
    unproject_accums,
    wrap_init,
)

if TYPE_CHECKING:
    from ._closure import OpaqueClosure

world_call_p = Primitive("world_call")
world_call_p.multiple_results = True


def bind(closure: OpaqueClosure, *args):
    """Apply `closure`, as given, to flat `args` through the `world_call` primitive."""
    trace = current_trace()
    if not is_eval_trace(trace):
        note_use(closure, trace)  # the JAX caches that will hold it (scoped invalidation)
    return world_call_p.bind(*args, closure=closure)


def identifier(name: str) -> str:
    """`name` as a Python identifier (a jitted evaluator's name, a lowering's name stack)."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "world_call"


def _split(xs, n):
    xs = list(xs)
    return xs[:n], xs[n:]


# -- evaluation and abstract evaluation ---------------------------------------------------------

def _impl(*args, closure):
    # Eager calls run a compiled executable cached on the closure (one compile per closure).
    return closure.executable()(*args)


def _abstract_eval(*in_avals, closure):
    return list(closure.out_avals), positional_effects(closure.jaxpr)


def _typecheck(_ctx_factory, *in_atoms, closure):
    # `jax.core.check_jaxpr` (run under `jax_enable_checks`): the equation's inputs must be what
    # the closure's jaxpr takes. Like JAX's rule for `closed_call`, weak types aside.
    jaxpr = getattr(closure, "jaxpr", None)
    if not isinstance(jaxpr, ClosedJaxpr):
        raise JaxprTypeError(
            f"world_call: param 'closure' must be a jaxworld.OpaqueClosure holding a "
            f"ClosedJaxpr, got {type(closure).__name__}")
    in_avals = [x.aval for x in in_atoms]
    if len(in_avals) != len(jaxpr.in_avals):
        raise JaxprTypeError(
            f"world_call of {closure.name}: the closure takes {len(jaxpr.in_avals)} inputs "
            f"{closure.signature().split(' -> ')[0]}, the equation passes {len(in_avals)}")
    for i, (want, got) in enumerate(zip(jaxpr.in_avals, in_avals, strict=True)):
        if not typecompat(want, got):
            raise JaxprTypeError(
                f"world_call of {closure.name}: input {i} must be "
                f"{want.str_short(short_dtypes=True)}, got {got.str_short(short_dtypes=True)}")
    return list(jaxpr.out_avals), positional_effects(jaxpr)


# -- forward mode -------------------------------------------------------------------------------

def _derive_jvp(jaxpr, nonzeros):
    derived, nonzeros_out = jvp_jaxpr(jaxpr, list(nonzeros), instantiate=False)
    return {None: derived}, tuple(nonzeros_out)


def _jvp(primals, tangents, *, closure):
    nonzeros = tuple(type(t) is not Zero for t in tangents)
    derived = closure.derive("jvp", (nonzeros,))
    nonzero_tangents = [t for t in tangents if type(t) is not Zero]
    outs = bind(derived.closures[None], *primals, *nonzero_tangents)
    primals_out, tangents_out = _split(outs, len(closure.out_avals))
    tangents_out = iter(tangents_out)
    return primals_out, [next(tangents_out) if nz else Zero(aval.to_tangent_aval())
                         for aval, nz in zip(closure.out_avals, derived.meta, strict=False)]


# -- linearize: the direct path `jax.vjp` / `jax.grad` take since jax 0.7 -----------------------
# The primal closure returns the primal outputs *and* the residuals; the tangent closure consumes
# them. So reverse mode never recomputes the primal (compiled FLOPs equal plain JAX's).

def _derive_linearize(jaxpr, nonzeros, is_vjp):
    primal, num_res, nonzeros_out, in_fwd_res, tangent = linearize_jaxpr(
        jaxpr, list(nonzeros), is_vjp=is_vjp)
    return ({"primal": primal, "tangent": tangent},
            (num_res, tuple(nonzeros_out), tuple(in_fwd_res)))


def _linearize(is_vjp, nonzeros, *primals_in, closure):
    derived = closure.derive("linearize", (tuple(nonzeros), bool(is_vjp)))
    num_res, nonzeros_out, in_fwd_res = derived.meta
    outs = bind(derived.closures["primal"], *primals_in)
    primals_out, computed_res = _split(outs, len(outs) - num_res)
    # Residuals that are just inputs (or constants) are forwarded, not returned by the primal.
    forwardable = [*closure.jaxpr.consts, *primals_in]
    computed_res = iter(computed_res)
    residuals = [next(computed_res) if i is None else forwardable[i] for i in in_fwd_res]
    tangent_closure = derived.closures["tangent"]
    tangent_avals_out = [a.to_tangent_aval() for a in closure.out_avals]

    def tangent_fun(residuals, *tangents):
        nonzero_tangents = [instantiate_zeros(t)
                            for nz, t in zip(nonzeros, tangents, strict=False) if nz]
        outs = iter(bind(tangent_closure, *residuals, *nonzero_tangents))
        return [next(outs) if nz else Zero(aval)
                for aval, nz in zip(tangent_avals_out, nonzeros_out, strict=False)]

    return primals_out, list(nonzeros_out), residuals, tangent_fun


# -- transpose ----------------------------------------------------------------------------------

def _derive_transpose(jaxpr, in_tree, in_avals, specs):
    out_trees = []

    def transposed(*flat):
        primals_and_refs, cotangents = tree_util.tree_unflatten(in_tree, flat)
        args = unproject_accums(specs, primals_and_refs)
        backward_pass(jaxpr.jaxpr, False, jaxpr.consts, args, cotangents)
        cts_out = [x.freeze() if isinstance(x, ValAccum) else None for x in args]
        flat_out, out_tree = tree_util.tree_flatten(cts_out)
        out_trees.append(out_tree)
        return flat_out

    debug = jaxpr.jaxpr.debug_info.with_unknown_names()
    trans_jaxpr, _, consts = trace_to_jaxpr_dynamic(
        wrap_init(transposed, debug_info=debug), list(in_avals))
    return {None: ClosedJaxpr(trans_jaxpr, consts)}, out_trees[0]


def _transpose(cotangents, *args, closure):
    primals_and_refs, specs = project_accums(args)
    flat, in_tree = tree_util.tree_flatten((primals_and_refs, cotangents))
    in_avals = tuple(typeof(x) for x in flat)
    derived = closure.derive("transpose", (in_tree, in_avals, specs))
    cts_out = bind(derived.closures[None], *flat)
    for x, ct in zip(args, tree_util.tree_unflatten(derived.meta, cts_out), strict=False):
        if isinstance(x, ValAccum):
            x.accum(ct)


# -- vmap ---------------------------------------------------------------------------------------

def _derive_vmap(jaxpr, axis_data, batched):
    batched_jaxpr, out_batched = batch_jaxpr(jaxpr, axis_data, list(batched), False)
    return {None: batched_jaxpr}, tuple(out_batched)


def _batch(axis_data, args, dims, *, closure):
    batched = tuple(d is not None for d in dims)
    args = [moveaxis(x, d, 0) if d is not None and d != 0 else x
            for x, d in zip(args, dims, strict=False)]
    derived = closure.derive("vmap", (axis_data, batched))
    outs = bind(derived.closures[None], *args)
    # Report exactly which outputs are batched: `jacfwd` needs an unbatched primal output.
    return outs, [0 if b else None for b in derived.meta]


# -- dead-code elimination ----------------------------------------------------------------------

def _derive_dce(jaxpr, used_outputs):
    dced, used_inputs = dce_jaxpr(jaxpr.jaxpr, list(used_outputs))
    return {None: ClosedJaxpr(dced, jaxpr.consts)}, tuple(used_inputs)


def _dce(used_outputs, eqn):
    closure = eqn.params["closure"]
    if not any(used_outputs) and not closure.jaxpr.effects:
        return [False] * len(eqn.invars), None
    derived = closure.derive("dce", (tuple(used_outputs),))
    used_inputs = list(derived.meta)
    if all(used_outputs) and all(used_inputs):
        return used_inputs, eqn
    new_closure = derived.closures[None]
    invars = [v for v, used in zip(eqn.invars, used_inputs, strict=True) if used]
    outvars = [v for v, used in zip(eqn.outvars, used_outputs, strict=True) if used]
    # Postconditions: the pruned closure takes exactly the used inputs and gives the used outputs.
    assert len(used_inputs) == len(eqn.invars)
    assert all(typecompat(a, v.aval)
               for a, v in zip(new_closure.in_avals, invars, strict=True))
    assert len(outvars) == len(new_closure.out_avals)
    new_eqn = new_jaxpr_eqn(invars, outvars, world_call_p, {"closure": new_closure},
                                 eqn_effects(new_closure.jaxpr, invars),
                                 eqn.source_info, eqn.ctx)
    return used_inputs, new_eqn


# -- partial evaluation (inside scan / cond / while bodies, `jax.linearize` fallbacks) -----------

def _derive_partial_eval(jaxpr, unknowns):
    known, unknown, out_unknowns, residual_avals = partial_eval_jaxpr_nounits(
        jaxpr, list(unknowns), instantiate=False)
    return {"known": known, "unknown": unknown}, (tuple(out_unknowns), len(residual_avals))


def _partial_eval(trace, *tracers, closure):
    unknowns = tuple(not t.pval.is_known() for t in tracers)
    derived = closure.derive("partial_eval", (unknowns,))
    out_unknowns, num_res = derived.meta
    known_in = [t.pval.get_known() for t in tracers if t.pval.is_known()]
    known = derived.closures["known"]
    # Nothing known to compute (no outputs, no residuals, no effects): bind nothing, rather than
    # leave an empty `world_call` behind.
    known_outs = (bind(known, *known_in) if known.out_avals or known.jaxpr.effects else [])
    known_out_vals, residuals = _split(known_outs, len(known_outs) - num_res)
    # Postconditions: one flag per output; the known closure gives the known outputs and then
    # the residuals; the unknown one takes the residuals and then the unknown inputs.
    assert len(out_unknowns) == len(closure.out_avals)
    assert len(known_out_vals) == out_unknowns.count(False) and len(residuals) == num_res
    residual_tracers = [trace.new_instantiated_const(r) for r in residuals]
    unknown_closure = derived.closures["unknown"]
    # `partial_eval_jaxpr_nounits` puts the residual binders first.
    unknown_in = [*residual_tracers, *[t for t in tracers if not t.pval.is_known()]]
    assert len(unknown_in) == len(unknown_closure.in_avals)
    assert len(unknown_closure.out_avals) == out_unknowns.count(True)
    unknown_out = [JaxprTracer(trace, PartialVal.unknown(aval), None)
                   for aval in unknown_closure.out_avals]
    recipe = new_eqn_recipe(trace, unknown_in, unknown_out, world_call_p,
                               {"closure": unknown_closure},
                               positional_effects(unknown_closure.jaxpr),
                               current_source_info())
    for t in unknown_out:
        t.recipe = recipe
    known_iter, unknown_iter = iter(known_out_vals), iter(unknown_out)
    return [next(unknown_iter) if uk else next(known_iter) for uk in out_unknowns]


def _derive_partial_eval_custom(jaxpr, unks_in, inst_in, disallowed_out_fwds, saveable):
    (known, staged, unks_out, inst_out, num_res_ref, num_res_val, in_fwd, out_fwd) = \
        closed_jaxpr_partial_eval_custom(
            jaxpr, unks_in, inst_in, (False,) * len(unks_in), disallowed_out_fwds, saveable)
    meta = (tuple(unks_out), tuple(inst_out), num_res_ref, num_res_val, tuple(in_fwd),
            tuple(out_fwd))
    return {"known": known, "staged": staged}, meta


def _partial_eval_custom(saveable, unks_in, inst_in, eqn):
    # JAX's generic rule for closed-call-like primitives does the equation surgery; it expects the
    # jaxpr under a param name, so hand it the closure's jaxpr and swap derived closures back in.
    closure = eqn.params["closure"]
    disallowed_out_fwds = tuple(isinstance(v, DropVar) for v in eqn.outvars)
    derived = closure.derive(
        "partial_eval_custom", (tuple(unks_in), tuple(inst_in), disallowed_out_fwds, saveable))

    def params_updater(unks_in, inst_in, kept_outs_known, kept_outs_staged, num_res_out,
                       num_res_in, params_known, params_staged):
        # JAX's rule computed the same split through the same cache (`params_*["jaxpr"]`); the
        # derived closures carry it with a way back to their parent.
        return {"closure": derived.closures["known"]}, {"closure": derived.closures["staged"]}

    as_call = eqn.replace(params={"jaxpr": closure.jaxpr})
    eqn_known, eqn_staged, unks_out, inst_out, residuals = closed_call_partial_eval_custom_rule(
        "jaxpr", params_updater, saveable, unks_in, inst_in, as_call)
    # Postconditions: each new equation binds a derived closure of the matching arity, and JAX's
    # split is the one the derivation cached (its flags for the outputs).
    assert derived.meta[:2] == (tuple(unks_out), tuple(inst_out))
    for new_eqn in (eqn_known, eqn_staged):
        new_closure = new_eqn.params["closure"]
        assert len(new_eqn.invars) == len(new_closure.in_avals)
        assert len(new_eqn.outvars) == len(new_closure.out_avals)
    return eqn_known, eqn_staged, unks_out, inst_out, residuals


# -- lowering: inlined into the enclosing function, plain StableHLO (no host callbacks) -----------
# Inlined like `custom_jvp_call`'s lowering, not a private `func.call`: XLA optimizes across a call
# boundary less well (e.g. it misses folding `100 * (2 * u)`; up to 7% more compiled FLOPs for a
# Rosenbrock Hessian, the same penalty as a nested `jax.jit`), so the compiled program is plain
# JAX's (issue #6: FLOPs ratio 1.00). The closure's name stays in the op_name metadata.

def _lowering(ctx, *args, closure):
    # Never an old world's closure: a JAX cache jaxworld did not know of may hand one back
    # after a change; the current world's is lowered in its place (`_caches.for_lowering`).
    closure = for_lowering(closure)
    jaxpr = closure.jaxpr
    consts = ir_consts(jaxpr.consts, [v.aval for v in jaxpr.jaxpr.constvars])
    outs, tokens = jaxpr_subcomp(
        ctx.module_context, jaxpr.jaxpr, ctx.name_stack.extend(identifier(closure.name)),
        ctx.tokens_in, consts, *args, dim_var_values=ctx.dim_var_values,
        const_lowering=ctx.const_lowering, outer_traceback=ctx.traceback)
    ctx.set_tokens_out(tokens)
    return outs


# -- registration: every table, in one place ----------------------------------------------------

DERIVERS: dict[str, Callable[..., tuple[dict[str | None, ClosedJaxpr], Any]]] = {
    "jvp": _derive_jvp,
    "linearize": _derive_linearize,
    "transpose": _derive_transpose,
    "vmap": _derive_vmap,
    "dce": _derive_dce,
    "partial_eval": _derive_partial_eval,
    "partial_eval_custom": _derive_partial_eval_custom,
}

world_call_p.def_impl(_impl)
world_call_p.def_effectful_abstract_eval(_abstract_eval)
custom_typechecks[world_call_p] = _typecheck
primitive_jvps[world_call_p] = _jvp
primitive_linearizations[world_call_p] = _linearize
fancy_transposes[world_call_p] = _transpose
fancy_primitive_batchers[world_call_p] = _batch
dce_rules[world_call_p] = _dce
custom_partial_eval_rules[world_call_p] = _partial_eval
partial_eval_jaxpr_custom_rules[world_call_p] = _partial_eval_custom
register_lowering(world_call_p, _lowering)
