"""The documentation: docs/cli.md is what the CLI's parser says now, and every relative link in
README.md and docs/*.md leads to a file (and a heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgecv.cli.reference import render

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: pages linked from the README that other changes add; a link to one is checked as soon as it exists
PENDING = {"docs/architecture.md", "docs/testing.md"}

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"(?<!\\)!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where links and headings are not."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: links reduced to their text, lower case, punctuation
    dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a Markdown page: its headings' (repeats numbered -1, -2 as GitHub does)
    and explicit <a id=...> ones."""
    seen: dict[str, int] = {}
    out = set(_HTML_ID.findall(text))
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        s = slug(heading)
        out.add(f"{s}-{seen[s]}" if s in seen else s)
        seen[s] = seen.get(s, 0) + 1
    return out


def broken_links(page: Path, root: Path = ROOT, pending: set[str] = frozenset()) -> list[str]:
    """The relative links of ``page`` whose file or heading does not exist."""
    text = page.read_text(encoding="utf-8")
    problems = []
    for target in _LINK.findall(_prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        rel = dest.relative_to(root).as_posix() if dest.is_relative_to(root) else str(dest)
        if not dest.exists():
            if rel not in pending:
                problems.append(f"{target}: no file {rel}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading #{anchor} in {rel}")
    return problems


def test_cli_reference_is_current():
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == render(), "docs/cli.md is stale: run `python -m edgecv.cli.reference` from the repository root"


def test_cli_reference_names_every_command_and_option():
    from edgecv.cli import build_parser

    text = render()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert f"## edgecv {name}\n" in text
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text, f"edgecv {name} {option} missing from the reference"


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_resolve(page):
    assert broken_links(page, pending=PENDING) == []


def test_link_check_finds_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## The static check: `edgecv doctor`\n\n## Notes\n\n## Notes\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#the-static-check-edgecv-doctor) [ok](docs/a.md#notes-1) [ok](#top-heading)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nowhere) [web](https://example.com/x.md)\n\n"
        "# Top heading\n\n```\n[in code](docs/c.md)\n```\n\n`[in a span](docs/d.md)`\n"
        "[later](docs/architecture.md)\n"
    )
    assert broken_links(page, tmp_path) == [
        "docs/b.md: no file docs/b.md",
        "docs/a.md#nowhere: no heading #nowhere in docs/a.md",
        "docs/architecture.md: no file docs/architecture.md",
    ]
    assert broken_links(page, tmp_path, {"docs/architecture.md"}) == broken_links(page, tmp_path)[:2]


def test_slugs_follow_github():
    assert slug("TensorRT: engines built on the device") == "tensorrt-engines-built-on-the-device"
    assert slug("FP16, BF16 and INT8") == "fp16-bf16-and-int8"
    assert slug("The static check: `edgecv doctor`") == "the-static-check-edgecv-doctor"
    assert slug("Install for your device") == "install-for-your-device"


def test_readme_demo_table_is_what_the_demo_prints():
    """The README's sample of `edgecv demo` is laid out as format_table lays it out now (mAP in
    points, as val and compare print it): its rows, read back, print the same block."""
    from edgecv.demo import format_table

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(target .*?)\n```", text, re.S)
    assert block, "the demo table is missing from README.md"
    lines = block.group(1).splitlines()
    rows = []
    for line in lines[2:]:
        cells = re.split(r"\s{2,}", line.strip())
        target, precision, map_, map50, delta, ms, mb = cells
        rows.append(
            {
                "target": target,
                "precision": precision,
                "map": float(map_) / 100,
                "map50": float(map50) / 100,
                "delta_map": None if delta == "—" else float(delta) / 100,
                "median_ms": float(ms),
                "size_bytes": None if mb == "—" else float(mb) * 1e6,
            }
        )
    assert format_table(rows) == block.group(1)
