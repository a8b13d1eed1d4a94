"""The `n3ml` command line. Subcommands live in n3ml/commands/, one module each.

Every user-facing error (bad file, unsupported construct, failed check) is
printed as one located message with exit status 1, never a traceback (a bad
command line too). A bug in
n3ml itself prints a short "internal error" message with exit status 2;
N3ML_DEBUG=1 (or N3ML_TRACEBACK=1, or --verbose) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import stat
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
    "targets": "targets",
}

# Paths the commands read or write, checked before any work: a FIFO given as a model would block
# open() forever, and a bad -o found after a long simulation wastes it.
# (command or "*", argument) -> "read" (a regular file), "write" (a file in an existing directory),
# "outdir" (a directory that may not exist yet; its parent must).
PATH_ARGS: dict[tuple[str, str], str] = {
    ("*", "model"): "read",
    ("*", "input"): "read",
    ("*", "calibration"): "read",
    ("*", "rates"): "read",
    ("simulate", "output"): "write",
    ("simulate", "plot"): "write",
    ("render", "output"): "write",
    ("convert", "report"): "write",
    ("convert", "output"): "outdir",
    ("verify", "keep"): "outdir",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is a user error like any other: one message and exit 1 (argparse's own
    exit 2 would read as n3ml's "internal error")."""

    def error(self, message: str):
        from .errors import N3mlError

        raise N3mlError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from . import __version__

    parser = _Parser(prog="n3ml", description="A compiler for spiking neural networks.")
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


def _check_read(path: str, what: str) -> None:
    from .errors import N3mlError

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise N3mlError(f"{path}: no such file") from None
    except OSError as e:
        raise N3mlError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise N3mlError(f"{path}: is a directory; the {what} must be a file")
    if not stat.S_ISREG(st.st_mode):  # FIFO, socket, device: open() or read() could block forever
        raise N3mlError(f"{path}: not a regular file (a pipe, socket or device); the {what} must be a file")
    if not os.access(path, os.R_OK):
        raise N3mlError(f"{path}: permission denied (cannot read the {what})")


def _check_write(path: str, what: str, directory: bool) -> None:
    """A file output needs an existing, writable directory; a directory output (made with its parents)
    needs its nearest existing ancestor to be a writable directory."""
    from .errors import N3mlError

    if os.path.exists(path) or path.endswith(os.sep):
        if directory and not os.path.isdir(path) and os.path.exists(path):
            raise N3mlError(f"{path}: exists and is not a directory; {what} must name a directory")
        if not directory and os.path.isdir(path):
            raise N3mlError(f"{path}: is a directory; {what} must name a file")
        if not directory and os.path.exists(path) and not os.path.isfile(path):
            raise N3mlError(f"{path}: not a regular file; {what} must name a file")
    parent = os.path.dirname(os.path.abspath(path))
    if directory:
        while not os.path.exists(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        what_is = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise N3mlError(f"{path}: cannot write {what}: directory {parent} {what_is}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise N3mlError(f"{path}: cannot write {what}: permission denied in {parent}")
    if not directory and os.path.exists(path) and not os.access(path, os.W_OK):
        raise N3mlError(f"{path}: cannot write {what}: permission denied")


def check_paths(command: str, args: argparse.Namespace) -> None:
    """Refuse unreadable inputs and unwritable outputs before a command does any work."""
    for (cmd, attr), kind in PATH_ARGS.items():
        if cmd not in ("*", command):
            continue
        value = getattr(args, attr, None)
        if not isinstance(value, str) or not value:
            continue
        flag = "--" + attr if attr != "model" else "the model"
        if kind == "read":
            _check_read(value, "model" if attr == "model" else f"{flag} file")
        else:
            _check_write(value, flag, directory=kind == "outdir")


def _env_flag(name: str) -> bool:
    """N3ML_DEBUG=1 (or yes/true) is on; unset, empty, 0, no, false are off."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false", "off")


def _describe_os_error(e: OSError) -> str:
    name = e.filename if e.filename is not None else None
    reason = e.strerror or errno.errorcode.get(e.errno or 0, "") or str(e)
    if name is not None:
        other = f" -> {e.filename2}" if e.filename2 is not None else ""
        return f"{name}{other}: {reason}"
    return str(e) or reason


def main(argv: list[str] | None = None) -> int:
    from .errors import N3mlError
    from .ir.text import ParseError
    from .ir.types import VerifyError

    parser, modules = build_parser()
    try:
        args = parser.parse_args(argv)
    except N3mlError as e:  # a bad command line, or an option's value refused by its type (--steps 1e23)
        words = sys.argv[1:] if argv is None else argv
        cmd = next((w for w in words if w in modules), None)
        print(f"n3ml{' ' + cmd if cmd else ''}: error: {e}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if not args.command:
        parser.print_help(sys.stderr)
        return 1
    debug = bool(args.verbose or _env_flag("N3ML_DEBUG") or _env_flag("N3ML_TRACEBACK"))
    prefix = f"n3ml {args.command}"
    try:
        check_paths(args.command, args)
        return int(modules[args.command].run(args) or 0)
    except (N3mlError, ParseError, VerifyError) as e:
        if debug:
            raise
        print(f"{prefix}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # permission denied, a directory or FIFO where a file was expected, disk full
        if debug:
            raise
        print(f"{prefix}: error: {_describe_os_error(e)}", file=sys.stderr)
        return 1
    except MemoryError:
        if debug:
            raise
        print(f"{prefix}: error: out of memory (the model or the requested run is too large for this "
              "machine; reduce --steps, --batch or the model's size)", file=sys.stderr)
        return 1
    except RecursionError:
        if debug:
            raise
        print(f"{prefix}: error: the input is nested too deeply to process", file=sys.stderr)
        return 1
    except Exception as e:  # a bug in n3ml, not in the user's input
        if debug:
            raise
        msg = str(e).strip().splitlines()
        print(f"{prefix}: internal error: {type(e).__name__}: {msg[0][:500] if msg else ''}\n"
              "  This is a bug in n3ml, not in your input. Please report it on n3ml's issue tracker with the "
              "command line,\n  the input files and the traceback that N3ML_DEBUG=1 prints when you run it again.",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
