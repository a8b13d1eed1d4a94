"""The `n3ml` command line. Subcommands live in n3ml/commands/, one module each.

Every user-facing error (bad file, unsupported construct, failed check) is
printed as one located message with a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# subcommand name -> module in n3ml.commands providing add_arguments(parser) and run(args) -> int
COMMANDS: dict[str, str] = {
    "check": "check",
    "fmt": "fmt",
    "simulate": "simulate",
    "passes": "passes",
    "convert": "convert",
    "show": "show",
    "render": "render",
    "verify": "verify",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from . import __version__

    parser = argparse.ArgumentParser(prog="n3ml", description="A compiler for spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"n3ml {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(f"n3ml.commands.{modname}")
        except ModuleNotFoundError as e:
            if e.name == f"n3ml.commands.{modname}":
                continue  # command not built yet in this checkout
            raise
        doc = (mod.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else None, description=(mod.__doc__ or "").strip())
        mod.add_arguments(p)
        modules[name] = mod
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    from .errors import N3mlError
    from .ir.text import ParseError
    from .ir.types import VerifyError

    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except (N3mlError, ParseError, VerifyError) as e:
        if args.verbose or os.environ.get("N3ML_TRACEBACK"):
            raise
        print(f"n3ml {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
