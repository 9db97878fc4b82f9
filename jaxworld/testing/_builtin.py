"""The built-in suite that `jaxworld check` runs: nested-AD scenarios and world-change scenarios.

The functions are ordinary JAX code, the kind users differentiate: elementwise maps and
reductions, linear algebra, MLP and logistic-regression losses on pytree parameters, control flow,
custom rules, integer/static/complex arguments and closures. Where plain JAX itself cannot do an
operator (reverse mode through ``while_loop``, forward mode of a ``custom_vjp``), the scenario says
so in its name and expects JAX's own error from jaxworld.

The world-change scenarios (names contain ``world``) cover each row of the change matrix of the
world-tracking issue (#3), plus the two "nothing to re-trace" cases.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._matrix import scenarios_for
from ._modifiers import MODIFIERS
from ._scenario import Scenario, WorldScenario

# ------------------------------------------------------------------------------------------------
# Elementwise maps and reductions


def sin_sq(x):
    return jnp.sum(jnp.sin(x) ** 2 * x)


def tanh_exp(x):
    return jnp.tanh(x) * jnp.exp(-x)  # vector output


def cumprod_sum(x):
    return jnp.sum(jnp.cumprod(1.0 + x))


def soft_norm(x):
    return jnp.sqrt(jnp.sum(x ** 2) + 1.0)


def piecewise(x):
    return jnp.sum(jnp.where(x > 0.5, x ** 3, jnp.sin(x)))


def var_plus_mean(x):
    return jnp.var(x) + jnp.mean(x) ** 2


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_grad(x):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def logsumexp(x):
    return jax.nn.logsumexp(x)


def matrix_tanh(m):
    return jnp.sum(jnp.tanh(m @ m.T))


def scalar_poly(t):
    return t ** 3 * jnp.sin(t)


def scalar_poly_grad(t):
    return 3 * t ** 2 * np.sin(t) + t ** 3 * np.cos(t)


_Q = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.5]], np.float32)
_B = np.array([1.0, -2.0, 0.5], np.float32)


def quadratic(x):
    return 0.5 * x @ (jnp.asarray(_Q) @ x) + jnp.asarray(_B) @ x


# ------------------------------------------------------------------------------------------------
# Linear algebra


def _spd(m):
    return m @ m.T + 2.0 * jnp.eye(m.shape[0], dtype=m.dtype)


def solve_sum(d):
    a = jnp.asarray(_Q) + jnp.diag(d)
    return jnp.sum(jnp.linalg.solve(a, jnp.asarray(_B)) ** 2)


def cholesky_logdet(m):
    chol = jnp.linalg.cholesky(_spd(m))
    return 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))


def eig_sq_sum(m):
    sym = 0.5 * (m + m.T)
    return jnp.sum(jnp.linalg.eigvalsh(sym) ** 2)


def eig_sq_sum_grad(m):
    # sum(eigenvalues(S)^2) = trace(S^2) = sum(S_ij^2) with S = (M + M^T)/2: gradient 2S.
    m = np.asarray(m, np.float64)
    return m + m.T


def eigh_cubed(m):
    values, _ = jnp.linalg.eigh(_spd(m))
    return jnp.sum(values ** 3) / 10.0


def slogdet_fn(a):
    return jnp.linalg.slogdet(a)[1]


def slogdet_grad(a):
    return np.linalg.inv(np.asarray(a, np.float64)).T


def trace_inverse(a):
    return jnp.trace(jnp.linalg.inv(a))


# ------------------------------------------------------------------------------------------------
# Models with pytree parameters


def mlp_loss(params, inputs, targets):
    hidden = jnp.tanh(inputs @ params["w1"] + params["b1"][None, :])
    out = hidden @ params["w2"] + params["b2"][None, :]
    return jnp.mean((out[:, 0] - targets) ** 2)


def logistic_loss(params, inputs, labels):
    logits = inputs @ params["w"] + params["b"]
    return jnp.mean(jax.nn.softplus(-labels * logits))


def linear_tuple_loss(params, inputs):
    (w, b), = params
    return jnp.sum((inputs @ w + b) ** 2) / inputs.shape[0]


# ------------------------------------------------------------------------------------------------
# Control flow


def rnn_scan(w, xs):
    def step(h, x):
        h = jnp.tanh(w @ h + x)
        return h, jnp.sum(h)
    h, ys = lax.scan(step, jnp.zeros(w.shape[0], w.dtype), xs)
    return jnp.sum(h ** 2) + jnp.sum(ys) / 10.0


def cond_fn(x):
    return lax.cond(jnp.sum(x) > 1.0,
                    lambda v: jnp.sum(jnp.sin(v) * v),
                    lambda v: jnp.sum(jnp.cos(v) ** 2), x)


def fori_static(x):
    return jnp.sum(lax.fori_loop(0, 4, lambda i, v: jnp.sin(v) * 1.1 + 0.1 * i, x) ** 2)


def _while_sin(x):
    def body(carry):
        i, v = carry
        return i + 1, jnp.sin(v) + 0.5 * v
    return lax.while_loop(lambda c: c[0] < 3, body, (0, x))[1]


def while_loss(x):
    return jnp.sum(_while_sin(x) ** 2)


def while_vector(x):
    return _while_sin(x)


def fori_dynamic(x, n):
    return jnp.sum(lax.fori_loop(0, n, lambda i, v: jnp.sin(v) + 0.1, x) ** 2)


def vmap_inner(x):
    m = jnp.arange(12.0, dtype=x.dtype).reshape(3, 4) / 10.0
    return jnp.sum(jax.vmap(lambda row: jnp.dot(row, x) ** 2)(m))


def checkpointed(x):
    inner = jax.checkpoint(lambda v: jnp.sin(jnp.cos(v) * v))
    return jnp.sum(inner(x) ** 2)


# ------------------------------------------------------------------------------------------------
# Custom rules


@jax.custom_jvp
def stable_softplus(x):
    return jnp.logaddexp(x, 0.0)


@stable_softplus.defjvp
def _stable_softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return stable_softplus(x), jax.nn.sigmoid(x) * t


def custom_jvp_loss(x):
    return jnp.sum(stable_softplus(x) ** 2 * x)


@jax.custom_vjp
def scaled_sin(x):
    return jnp.sin(x)


def _scaled_sin_fwd(x):
    return jnp.sin(x), x


def _scaled_sin_bwd(x, g):
    return (g * jnp.cos(x),)


scaled_sin.defvjp(_scaled_sin_fwd, _scaled_sin_bwd)


def custom_vjp_loss(x):
    return jnp.sum(scaled_sin(x) ** 2)


# ------------------------------------------------------------------------------------------------
# Integer, static and complex arguments; closures


def int_scale(x, n):
    return jnp.sum(jnp.sin(x) ** 2 * n)


def gather_loss(x, idx):
    return jnp.sum(x[idx] ** 3)


def power_static(x, p):
    out = x
    for _ in range(p - 1):  # a Python loop over a static integer
        out = out * x
    return jnp.sum(jnp.sin(out))


def mode_static(x, mode):
    f = {"sin": jnp.sin, "cos": jnp.cos}[mode]
    return jnp.sum(f(x) * x)


def complex_sin(z):
    return jnp.sum(jnp.sin(z) ** 2)


def complex_poly(z):
    return z ** 3 + 2.0 * z


def make_closure(a):
    def closed(x):
        return jnp.sum(jnp.tanh(a @ x) ** 2)
    return closed


def make_nested_closure(a, b):
    def outer(x):
        def inner(y):
            return jnp.sin(a @ y) + b
        return jnp.sum(inner(x) ** 2)
    return outer


# ------------------------------------------------------------------------------------------------
# User code. jaxworld treats its own package as library code (compared by identity, never walked),
# so the functions above have no user-level dependencies to mutate. The source below is compiled
# like a notebook cell and holds one of each kind `jaxworld check --mutate` changes (issue #15): a
# helper function, a float global, a NumPy array global, an object with a method, an array field
# and a float field.

_USER_SOURCE = """
import jax.numpy as jnp
import numpy as np

TEMPERATURE = 0.8
OFFSETS = np.array([0.3, -0.2, 0.5, 0.1, -0.4], dtype=np.float32)


def activation(v):
    return jnp.tanh(v)


class Layer:
    def __init__(self, weights, scale):
        self.weights = weights
        self.scale = scale

    def apply(self, x):
        return activation(self.weights * x) * self.scale


LAYER = Layer(np.array([0.5, -1.0, 1.5, 0.8, -0.3], dtype=np.float32), 1.2)


def layer_loss(x):
    return jnp.sum(LAYER.apply(x) ** 2) / TEMPERATURE


def offset_loss(x):
    return jnp.sum(activation(x + OFFSETS) ** 3)
"""

USER_CODE: dict = {"__name__": "jaxworld_check_user_code"}
exec(compile(_USER_SOURCE, "<jaxworld check: built-in user code>", "exec"), USER_CODE)


# ------------------------------------------------------------------------------------------------


def _inputs():
    rng = np.random.default_rng(42)
    f32 = np.float32
    x = jnp.linspace(0.1, 1.0, 5, dtype=f32)
    m = jnp.asarray(rng.standard_normal((3, 3)) * 0.5, f32)
    diag_dom = jnp.asarray(np.eye(3) * 3.0 + rng.standard_normal((3, 3)) * 0.3, f32)
    sym = jnp.asarray(np.diag([1.0, 2.5, 4.0]) + rng.standard_normal((3, 3)) * 0.1, f32)
    inputs = jnp.asarray(rng.standard_normal((6, 3)), f32)
    targets = jnp.asarray(rng.standard_normal(6), f32)
    labels = jnp.asarray(np.sign(rng.standard_normal(6)), f32)
    mlp = {"w1": jnp.asarray(rng.standard_normal((3, 4)) * 0.5, f32),
           "b1": jnp.asarray(rng.standard_normal(4) * 0.1, f32),
           "w2": jnp.asarray(rng.standard_normal((4, 1)) * 0.5, f32),
           "b2": jnp.asarray(rng.standard_normal(1) * 0.1, f32)}
    logistic = {"w": jnp.asarray(rng.standard_normal(3) * 0.5, f32), "b": jnp.asarray(0.1, f32)}
    xs = jnp.asarray(rng.standard_normal((4, 3)) * 0.5, f32)
    z = jnp.asarray([0.3 + 0.2j, -0.5 + 0.4j, 0.1 - 0.3j], np.complex64)
    a = jnp.asarray(rng.standard_normal((3, 4)) * 0.5, f32)
    return dict(x=x, m=m, diag_dom=diag_dom, sym=sym, inputs=inputs, targets=targets,
                labels=labels, mlp=mlp, logistic=logistic, xs=xs, z=z, a=a)


def _scenarios() -> list:
    v = _inputs()
    x, m = v["x"], v["m"]
    out = []

    def add(fun, args, operators, prefix=None, vias=("operator",), expect_errors=False, **kw):
        # Through scenarios_for: an operator that does not apply, or that plain JAX cannot do
        # (unless expect_errors), would be skipped; in the built-in suite that is a bug.
        cases = scenarios_for(fun, *args, operators=operators, modes=("fwd_over_rev",),
                              vias=vias, name=prefix, expect_errors=expect_errors, **kw)
        assert not cases.skipped, cases.skipped
        out.extend(cases)
        return cases

    # Elementwise and reductions; sin_sq through the whole matrix (every operator, every
    # Hessian mode, both vias).
    out.extend(scenarios_for(sin_sq, x))
    add(tanh_exp, (x,), ["jvp", "vjp", "jacfwd", "jacrev"])
    add(cumprod_sum, (x,), ["grad", "hessian"])
    add(soft_norm, (x,), ["hessian:fwd_over_fwd", "third_order"])
    add(piecewise, (x,), ["grad", "hessian"])
    add(var_plus_mean, (x,), ["hessian:rev_over_fwd"])
    add(logsumexp, (x,), ["grad", "hessian:rev_over_rev"])
    add(rosenbrock, (x,), ["grad"], reference=rosenbrock_grad)
    add(rosenbrock, (x,), ["hvp", "third_order"])
    add(quadratic, (x[:3],), ["grad"], reference=lambda x: _Q @ np.asarray(x) + _B)
    add(quadratic, (x[:3],), ["hessian"], reference=_Q)
    add(matrix_tanh, (m,), ["grad", "hessian"])
    add(scalar_poly, (jnp.float32(0.7),), ["grad"], reference=scalar_poly_grad)
    add(scalar_poly, (jnp.float32(0.7),), ["hessian", "third_order"])

    # Linear algebra.
    add(solve_sum, (x[:3],), ["grad", "hessian", "jacrev"])
    add(cholesky_logdet, (m,), ["grad", "hessian"])
    add(eig_sq_sum, (v["sym"],), ["grad"], prefix="eigh: sum of eigenvalues squared",
        reference=eig_sq_sum_grad)
    add(eig_sq_sum, (v["sym"],), ["hessian"], prefix="eigh: sum of eigenvalues squared")
    add(eigh_cubed, (m,), ["grad", "hessian"])
    add(slogdet_fn, (v["diag_dom"],), ["grad"], reference=slogdet_grad)
    add(slogdet_fn, (v["diag_dom"],), ["hessian:rev_over_rev"])
    add(trace_inverse, (v["diag_dom"],), ["grad"])

    # Models with pytree parameters.
    batch = (v["inputs"], v["targets"])
    add(mlp_loss, (v["mlp"], *batch), ["value", "grad", "jvp", "vjp", "hessian"])
    add(functools.partial(mlp_loss, inputs=batch[0], targets=batch[1]), (v["mlp"],),
        ["hvp"], prefix="mlp_loss (partial)")
    lbatch = (v["inputs"], v["labels"])
    add(logistic_loss, (v["logistic"], *lbatch), ["grad", "hessian", "jacfwd"])
    add(functools.partial(logistic_loss, inputs=lbatch[0], labels=lbatch[1]),
        (v["logistic"],), ["hvp"], prefix="logistic_loss (partial)")
    add(linear_tuple_loss, ((( v["a"][:, 0], jnp.float32(0.2)),), v["inputs"]),
        ["grad", "hessian:rev_over_rev"])

    # Control flow. Where plain JAX cannot (reverse mode through while_loop or a dynamic
    # fori_loop), the case expects JAX's own error from jaxworld, named after the limitation.
    add(rnn_scan, (m, v["xs"]), ["grad", "hessian", "jvp"], prefix="scan rnn")
    add(cond_fn, (x,), ["grad", "hessian"], prefix="cond (true branch)")
    add(cond_fn, (x * 0.1,), ["grad", "hessian"], prefix="cond (false branch)")
    add(fori_static, (x,), ["grad", "hessian"], prefix="fori_loop static bounds")
    add(while_loss, (x,), ["jvp", "jacfwd", "hessian:fwd_over_fwd", "grad", "hessian"],
        prefix="while_loop", expect_errors=True)
    add(while_vector, (x,), ["jacfwd"], prefix="while_loop vector")
    add(fori_dynamic, (x, 3), ["jacfwd", "grad"], prefix="fori_loop dynamic bound",
        expect_errors=True)
    add(vmap_inner, (x[:4],), ["grad", "hessian"], prefix="vmap inside")
    add(checkpointed, (x,), ["grad", "hessian"], prefix="checkpoint inside")

    # Custom rules (forward mode of a custom_vjp: JAX cannot, the case expects its error).
    add(custom_jvp_loss, (x,), ["grad", "jvp", "hessian", "third_order"], prefix="custom_jvp")
    add(custom_vjp_loss, (x,), ["grad", "vjp", "hessian", "hessian:rev_over_rev", "jvp",
                                "hessian:fwd_over_fwd"], prefix="custom_vjp", expect_errors=True)

    # Integer, static and complex arguments.
    n = jnp.asarray(3, jnp.int32)
    add(int_scale, (x, n), ["grad", "hessian", "jvp", "vjp"], prefix="integer argument")
    idx = jnp.asarray([0, 2, 2, 4], jnp.int32)
    add(gather_loss, (x, idx), ["grad", "jacrev"], prefix="integer index argument")
    add(power_static, (x, 3), ["value", "grad", "hessian"], static_argnums=(1,),
        prefix="static int argument")
    add(mode_static, (x, "cos"), ["value", "grad"], static_argnums=(1,),
        prefix="static str argument")
    add(complex_sin, (v["z"],), ["grad", "hessian"], prefix="complex holomorphic sum sin^2")
    out.append(Scenario(complex_sin, (v["z"],), "jvp", holomorphic=True,
                        name="complex holomorphic sum sin^2: jvp"))
    add(complex_poly, (v["z"],), ["value", "jacfwd", "jacrev"],
        prefix="complex holomorphic polynomial")

    # Closures capturing arrays.
    closed = make_closure(v["a"])
    closed.__name__ = "closure capturing an array"
    add(closed, (x[:4],), ["grad", "hessian", "hvp", "jvp"])
    nested = make_nested_closure(v["a"], jnp.float32(0.3))
    nested.__name__ = "nested closure"
    add(nested, (x[:4],), ["grad", "hessian"])
    add(USER_CODE["layer_loss"], (x,), ["grad", "hessian"],
        prefix="user code: object with a method and fields")
    add(USER_CODE["offset_loss"], (x,), ["hessian"], prefix="user code: NumPy global and helper")

    # Variants derived by the modifiers from cases above (issue #15): the same verdict with the
    # other arguments in a closure, an extra constant argument, under vmap against stacked
    # references, inside an outer jax.jit, and under the other jax_enable_x64 setting.
    by_name = {s.name: s for s in out}
    for modifier, names in _MODIFIED.items():
        for name in names:
            out.append(MODIFIERS[modifier](by_name[name]))
    return out


# Which cases each modifier derives a variant of: cheap ones, covering pytree parameters,
# integer and static arguments, analytic references, custom rules and every operator family.
_MODIFIED = {
    "closurify": ["mlp_loss: grad", "integer argument: hessian:fwd_over_rev",
                  "static int argument: grad"],
    "constantify": ["sin_sq: jvp", "quadratic: hessian:fwd_over_rev", "tanh_exp: jacrev"],
    "batchify": ["sin_sq: hessian:fwd_over_rev", "tanh_exp: jvp", "rosenbrock: grad",
                 "sin_sq: vjp"],
    "jitify": ["sin_sq: vjp", "custom_jvp: grad", "sin_sq: hvp", "sin_sq: value"],
    "x64ify": ["sin_sq: hessian:rev_over_rev", "rosenbrock: grad",
               "cond (true branch): hessian:fwd_over_rev"],
}


# ------------------------------------------------------------------------------------------------
# World-change scenarios: one per row of issue #3's change matrix, plus the no-op ones.

_HELPER_MODULE_V1 = """
import jax.numpy as jnp

def g(x):
    return jnp.sin(x)
"""

_HELPER_MODULE_V2 = """
import jax.numpy as jnp

def g(x):
    return 2.0 * jnp.cos(x) + x
"""

_CONST_MODULE = """
scale = 1.5
"""

# (name, setup, change, extra keyword arguments)
_WORLD_ROWS = [
    ("world: global helper redefined", """
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, """
        def g(x):
            return 3.0 * jnp.cos(x)
     """, {}),
    ("world: helper two calls deep redefined", """
        def h(x):
            return jnp.sin(x)
        def g(x):
            return h(x) * x
        def f(x):
            return jnp.sum(g(x) ** 2)
     """, """
        def h(x):
            return jnp.exp(-x)
     """, {}),
    ("world: global float rebound", """
        SCALE = 1.0
        def f(x):
            return jnp.sum(jnp.sin(SCALE * x) ** 2)
     """, "SCALE = 2.5", {}),
    ("world: global JAX array rebound", """
        W = jnp.array([1.0, 2.0, 3.0, 4.0])
        def f(x):
            return jnp.sum(jnp.sin(W * x) ** 2)
     """, "W = W * 0.5 + 1.0", {}),
    ("world: global NumPy array mutated in place", """
        A = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
        def f(x):
            return jnp.sum(jnp.sin(A * x) ** 2)
     """, "A[0] = 5.0\nA *= 0.5", {}),
    ("world: closure cell changed via nonlocal", """
        def make():
            scale = 1.0
            def f(x):
                return jnp.sum(jnp.sin(scale * x) ** 2)
            def set_scale(value):
                nonlocal scale
                scale = value
            return f, set_scale
        f, set_scale = make()
     """, "set_scale(2.0)", {}),
    ("world: __defaults__ changed", """
        def f(x, p=2.0):
            return jnp.sum(jnp.sin(x) ** p * x)
     """, "f.__defaults__ = (3.0,)", {}),
    ("world: helper __code__ swapped", """
        def g(x):
            return jnp.sin(x)
        def g2(x):
            return jnp.cos(x) * 2.0
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, "g.__code__ = g2.__code__", {}),
    ("world: method replaced on class of a global object", """
        class Model:
            def __init__(self, scale):
                self.scale = scale
            def apply(self, x):
                return jnp.sin(x) * self.scale
        model = Model(2.0)
        def f(x):
            return jnp.sum(model.apply(x) ** 2 * x)
     """, """
        def apply(self, x):
            return jnp.cos(x) * self.scale + x
        Model.apply = apply
     """, {}),
    ("world: defjvp called again on a custom_jvp (rule fixed)", """
        @jax.custom_jvp
        def act(x):
            return jnp.sin(x)
        # A wrong rule first (plain JAX agrees with it); the change fixes it.
        act.defjvp(lambda p, t: (act(p[0]), 2.0 * jnp.cos(p[0]) * t[0]))
        def f(x):
            return jnp.sum(act(x) * x)
     """, "act.defjvp(lambda p, t: (act(p[0]), jnp.cos(p[0]) * t[0]))", {"operator": "grad"}),
    ("world: global functools.partial rebound", """
        def base(x, a):
            return jnp.sin(a * x)
        p = functools.partial(base, a=1.0)
        def f(x):
            return jnp.sum(p(x) ** 2)
     """, "p = functools.partial(base, a=2.0)", {}),
    ("world: importlib.reload of a changed helper module", """
        import jaxworld_check_helper_mod as helpers
        def f(x):
            return jnp.sum(helpers.g(x) ** 2 * x)
     """, lambda world: world.module("jaxworld_check_helper_mod", _HELPER_MODULE_V2),
        {"modules": {"jaxworld_check_helper_mod": _HELPER_MODULE_V1}}),
    ("world: module attribute monkeypatched", """
        import jaxworld_check_const_mod as consts
        def f(x):
            return jnp.sum(jnp.sin(consts.scale * x) ** 2)
     """, "consts.scale = 3.0", {"modules": {"jaxworld_check_const_mod": _CONST_MODULE}}),
    # The same matrix through other operators and through plain JAX on a wrapped function.
    ("world: helper redefined, jax.jit(jax.hessian(wrap(f)))", """
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, """
        def g(x):
            return 3.0 * jnp.cos(x)
     """, {"via": "wrap"}),
    ("world: global float rebound, hvp", """
        SCALE = 1.0
        def f(x):
            return jnp.sum(jnp.sin(SCALE * x) ** 3)
     """, "SCALE = 0.5", {"operator": "hvp"}),
    ("world: helper redefined, third order", """
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, """
        def g(x):
            return jnp.tanh(x) * 2.0
     """, {"operator": "third_order"}),
    ("world: helper redefined, hessian rev_over_rev", """
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, """
        def g(x):
            return jnp.exp(0.5 * x)
     """, {"operator": "hessian:rev_over_rev"}),
    # Nothing to re-trace.
    ("world: no-op advance re-traces nothing", """
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, "", {"expect": "no_retrace"}),
    ("world: unrelated change re-traces nothing", """
        UNUSED = 1.0
        def unrelated(x):
            return x + UNUSED
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, """
        UNUSED = 123.0
        def unrelated(x):
            return x * 5.0
        ANOTHER = np.ones(3)
     """, {"expect": "no_retrace"}),
    ("world: unrelated change re-traces nothing, jax.jit(jax.hessian(wrap(f)))", """
        UNUSED = 1.0
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2 * x)
     """, "UNUSED = 2.0", {"expect": "no_retrace", "via": "wrap"}),
]


def _world_scenarios() -> list:
    x = jnp.linspace(0.1, 1.0, 4, dtype=np.float32)
    out = []
    for name, setup, change, extra in _WORLD_ROWS:
        extra = dict(extra)
        operator = extra.pop("operator", "hessian")
        out.append(WorldScenario(name, setup, change, operator, (x,), tags=("world",), **extra))
    return out


def builtin_suite() -> list:
    """The built-in suite: nested-AD scenarios, then world-change scenarios (a new list each call).

    Example:
      >>> from jaxworld.testing import builtin_suite
      >>> len(builtin_suite()) >= 60
      True
    """
    return _scenarios() + _world_scenarios()
