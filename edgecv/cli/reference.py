"""Write the command-line reference (docs/cli.md) from the argparse parser the CLI runs.

Run from the repository root: ``python -m edgecv.cli.reference`` rewrites docs/cli.md;
``--check`` exits 1 when the file differs from what the parser gives now.
tests/test_docs.py runs the same comparison, so the reference cannot go stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import build_parser

DEFAULT_OUT = Path("docs") / "cli.md"
_GROUP_TITLES = {"positional arguments": "Arguments", "options": "Options", "optional arguments": "Options"}


def _cell(text: str) -> str:
    """Text made safe for one cell of a Markdown table (pipes escaped; ``<model>`` is text, not a tag)."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _help(action: argparse.Action, prog: str) -> str:
    """The help text as argparse prints it: %-placeholders expanded, %% made %."""
    if not action.help:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return action.help % params


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _metavar(action: argparse.Action, default: str) -> str:
    """The action's metavar, or ``default``; a tuple of metavars (nargs > 1) space-separated, as
    argparse writes it."""
    m = action.metavar or default
    return " ".join(m) if isinstance(m, tuple) else m


def _argument(action: argparse.Action) -> str:
    """How the argument is written on the command line, e.g. ``--target``, ``-t TARGET``."""
    if not action.option_strings:
        name = _metavar(action, action.dest)
        return f"`{name}`" + (" (one or more)" if action.nargs == "+" else " (optional)" if action.nargs == "?" else "")
    if action.nargs == 0:
        return ", ".join(f"`{o}`" for o in action.option_strings)
    if action.choices is not None:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        value = _metavar(action, action.dest.upper())
    return ", ".join(f"`{o} {value}`" for o in action.option_strings)


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS:
        return ""
    return f"`{_value(action.default)}`"


def _is_documented(action: argparse.Action) -> bool:
    return (
        not isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))
        and action.help is not argparse.SUPPRESS
    )


def _synopsis(parser: argparse.ArgumentParser) -> str:
    words = [parser.prog]
    for action in parser._actions:
        if action.option_strings or not _is_documented(action):
            continue
        name = _metavar(action, action.dest)
        words.append(f"[{name}]" if action.nargs == "?" else f"{name} [{name} ...]" if action.nargs == "+" else name)
    words.append("[options]")
    return " ".join(words)


def _groups(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if _is_documented(a)]
        if not actions:
            continue
        title = _GROUP_TITLES.get(group.title or "", group.title or "")
        lines += ["", f"**{title[:1].upper()}{title[1:]}**"]
        if group.description:
            lines += ["", group.description]
        lines += ["", "| argument | default | description |", "|---|---|---|"]
        for a in actions:
            lines.append(f"| {_cell(_argument(a))} | {_cell(_default(a))} | {_cell(_help(a, parser.prog))} |")
    return lines


def _subcommands(parser: argparse.ArgumentParser) -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return dict(action.choices), helps
    return {}, {}


def _exit_status() -> str:
    from .. import cli

    paragraphs = [" ".join(p.split()) for p in (cli.__doc__ or "").split("\n\n")]
    text = next((p for p in paragraphs if p.startswith("Exit status")), "")
    return re.sub(r"(?::\w+:)?``?([^`]+)``?", r"`\1`", text)  # reST roles and literals as Markdown code


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown reference of ``parser`` (default: the ``edgecv`` CLI's): every command,
    its arguments, their defaults and help."""
    parser = parser or build_parser()
    commands, helps = _subcommands(parser)
    lines = [
        "# Command-line reference",
        "",
        "<!-- Generated from the CLI's argparse parser by `python -m edgecv.cli.reference`; do not edit by hand.",
        "     tests/test_docs.py fails when this file differs from what the generator writes. -->",
        "",
        f"`{parser.prog} [options] COMMAND ...`: {parser.description or ''}".rstrip(),
        "Every command also takes `-h`/`--help`; `edgecv --version` prints the version.",
    ]
    status = _exit_status()
    if status:
        lines += ["", status]
    lines += _groups(parser)
    lines += ["", "| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#edgecv-{name}) | {_cell(helps.get(name, ''))} |" for name in commands]
    for name, sub in commands.items():
        lines += ["", f"## edgecv {name}", "", sub.description or helps.get(name, ""), "", "```", _synopsis(sub), "```"]
        lines += _groups(sub)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgecv.cli.reference", description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help=f"file to write (default {DEFAULT_OUT})")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is not current")
    a = ap.parse_args(argv)
    text = render()
    if a.check:
        current = a.out.read_text(encoding="utf-8") if a.out.is_file() else None
        if current != text:
            print(f"{a.out} is not current: run python -m edgecv.cli.reference", file=sys.stderr)
            return 1
        return 0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text, encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
