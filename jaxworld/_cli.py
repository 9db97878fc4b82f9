"""The `jaxworld` command: `jaxworld check` (nested-AD regression suite), `jaxworld bench`."""

from __future__ import annotations

import argparse
import sys


def _demo_check(args: argparse.Namespace) -> int:
    # A short built-in check until the full harness lands (jaxworld.testing).
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxworld

    ns: dict = {"jnp": jnp}
    exec("def g(x):\n    return jnp.sin(x)\n\ndef f(x):\n    return jnp.sum(g(x) ** 2 * x)\n", ns)
    x = jnp.linspace(0.1, 1.0, 4)
    failures = 0

    def compare(name, got, want):
        nonlocal failures
        err = float(np.max(np.abs(np.asarray(got) - np.asarray(want))))
        status = "ok" if err <= 1e-4 else "FAIL"
        failures += status != "ok"
        print(f"{status:4}  {name:40} max abs error {err:.2e}")

    wf = jaxworld.wrap(ns["f"])
    compare("value", wf(x), ns["f"](x))
    compare("grad", jax.grad(wf)(x), jax.grad(ns["f"])(x))
    compare("hessian", jax.hessian(wf)(x), jax.hessian(ns["f"])(x))
    compare("third order", jax.jacfwd(jax.hessian(wf))(x), jax.jacfwd(jax.hessian(ns["f"]))(x))
    H = jax.jit(jax.hessian(wf))
    H(x)
    exec("def g(x):\n    return 3.0 * jnp.cos(x)\n", ns)
    jaxworld.advance()
    fresh = dict(ns)
    exec("def f(x):\n    return jnp.sum(g(x) ** 2 * x)\n", fresh)
    compare("world change: jit(hessian(wrap(f)))", H(x), jax.hessian(fresh["f"])(x))
    print(f"{5 - failures} passed, {failures} failed")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxworld", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="run the built-in nested-AD regression suite")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _demo_check(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
