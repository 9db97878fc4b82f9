"""Wrapped functions and prepared operators on 8 CPU devices (issue #7, item 7).

The main test process has one device, and the device count is fixed when JAX starts, so the checks
run in a subprocess started with ``--xla_force_host_platform_device_count=8``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent('''
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from jax import shard_map
    import jaxworld

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    row = NamedSharding(mesh, P("d"))

    def close(a, b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)

    def g(x):
        return jnp.sin(x) * 2.0

    def f(x):
        return jnp.sum(g(x) ** 2 + jnp.cos(x) * x)

    def rowwise(x):  # (n, 3) -> (n,)
        return jnp.tanh(x).sum(axis=1) * 0.5 + g(x[:, 0])

    wf, wrow = jaxworld.wrap(f), jaxworld.wrap(rowwise)
    x = jax.device_put(jnp.linspace(-1.0, 1.0, 16), row)
    xs = jax.device_put(jnp.linspace(-1.0, 1.0, 48).reshape(16, 3), row)

    # jit with NamedSharding inputs: values and output sharding as plain JAX.
    for name, ours, plain in [
            ("grad", jax.jit(jax.grad(wf)), jax.jit(jax.grad(f))),
            ("jaxworld.grad", jaxworld.grad(wf), jax.jit(jax.grad(f))),
            ("vmap-rowwise", jax.jit(wrow), jax.jit(rowwise)),
            ("hvp", jaxworld.hvp(wf), jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1]))]:
        args = (x, x) if name == "hvp" else ((xs,) if "rowwise" in name else (x,))
        a, b = ours(*args), plain(*args)
        close(a, b)
        assert a.sharding.is_equivalent_to(b.sharding, a.ndim), (name, a.sharding, b.sharding)
        assert a.sharding.is_equivalent_to(row, a.ndim), (name, a.sharding)
        print("ok", name, a.sharding.spec)

    # Explicit output sharding through jax.jit(out_shardings=...).
    H = jax.jit(jax.hessian(wf), out_shardings=NamedSharding(mesh, P("d", None)))
    h = H(x)
    close(h, jax.hessian(f)(x))
    assert h.sharding.spec == P("d", None), h.sharding
    print("ok hessian out_shardings", h.sharding.spec)

    # Inside shard_map: each device runs the wrapped function on its shard.
    def per_shard(block):
        return jax.grad(wf)(block), wrow(block.reshape(-1, 1) * jnp.ones((1, 3)))
    sm = jax.jit(shard_map(per_shard, mesh=mesh, in_specs=P("d"), out_specs=(P("d"), P("d"))))
    ours = sm(x)
    def plain_shard(b):
        return jax.grad(f)(b), rowwise(b.reshape(-1, 1) * jnp.ones((1, 3)))
    plain = jax.jit(shard_map(plain_shard, mesh=mesh, in_specs=P("d"),
                              out_specs=(P("d"), P("d"))))(x)
    for a, b in zip(ours, plain):
        close(a, b)
        assert a.sharding.is_equivalent_to(row, a.ndim), a.sharding
    print("ok shard_map")

    # The world still changes under sharding: redefine the helper and advance.
    def g(x):
        return jnp.cos(x) * 3.0
    jaxworld.advance()
    close(jax.jit(jax.grad(wf))(x), jax.jit(jax.grad(lambda x: jnp.sum((jnp.cos(x) * 3.0) ** 2
                                                                        + jnp.cos(x) * x)))(x))
    close(sm(x)[0], jax.grad(lambda b: jnp.sum((jnp.cos(b) * 3.0) ** 2 + jnp.cos(b) * b))(x))
    print("ok advance")
    print("ALL OK")
''')


def test_eight_devices_jit_named_sharding_and_shard_map():
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env["XLA_FLAGS"] = flags.strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "ALL OK" in proc.stdout, proc.stdout + proc.stderr[-4000:]
