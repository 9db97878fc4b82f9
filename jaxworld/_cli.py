"""The `jaxworld` command: `jaxworld check` (nested-AD regression suite), `jaxworld bench`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxworld", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from .testing import _cli as _check
    _check.add_arguments(sub.add_parser(
        "check", help="run the nested-AD regression suite (see jaxworld.testing)",
        description=_check.DESCRIPTION))
    from . import _bench
    _bench.add_arguments(sub.add_parser(
        "bench", help="benchmark jaxworld side by side with plain JAX (see BENCHMARKS.md)"))
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check.run(args)
    if args.command == "bench":
        return _bench.main(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
