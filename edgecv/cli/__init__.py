"""The edgecv command line: thin wrappers over the library.

Exit status: 0 success, 1 a failed gate, 2 a user error (an :class:`EdgecvError`,
printed without a traceback; ``--debug`` shows it), 3 a latency gate that could not
tell at the noise it measured (measure longer).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from ..errors import EdgecvError
from . import commands


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgecv", description="Export object detectors to edge bundles and run them.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    ap.add_argument("--version", action="version", version=f"edgecv {__import__('edgecv').__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (setup, run, help_) in commands.COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        setup(p)
        p.set_defaults(func=run)
    return ap


def parse(ap: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse a command line, letting options sit between a command's positionals
    (``edgecv compare model.pt --trust-pickle b1 b2``): argparse stops collecting a
    ``nargs="+"`` positional at the first option, so a command line it cannot place whole is
    parsed again by the command's own parser, intermixed."""
    args, extra = ap.parse_known_args(argv)
    if not extra:
        return args
    subs = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction)).choices  # noqa: SLF001
    at = argv.index(args.command)
    parsed = subs[args.command].parse_intermixed_args(argv[at + 1 :])  # errors (exit 2) name what is wrong
    return argparse.Namespace(**{**vars(args), **vars(parsed)})


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = parse(ap, list(sys.argv[1:] if argv is None else argv))
    try:
        code = args.func(args)
    except EdgecvError as e:
        if args.debug:
            traceback.print_exc()
        code = e.exit_code  # 2; a gate that could not be met exits 1, like other gates; 3 inconclusive
        label = {1: "gate failed", 3: "inconclusive"}.get(code, "error")
        print(f"edgecv: {label}: {e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("edgecv: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
