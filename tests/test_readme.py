"""The README stays a short guide that tells the truth: under ~260 lines, every file and
section it links to there, every screenshot shown, its API table the app's routes, and its
`namelab sample` / `namelab score` sessions what the command prints for the shipped models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main
from tests.live import ROOT

README = ROOT / "README.md"
MAX_LINES = 260  # issue 21: a newcomer's guide of about 250 lines; the rest lives in docs/
DOCUMENTS = [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # a '# comment' is no heading
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def links(path: Path) -> list[str]:
    return [t for t in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:", t)]


def test_the_readme_is_a_short_guide():
    lines = README.read_text().splitlines()
    assert len(lines) < MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it under {MAX_LINES} and put the detail in docs/")


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_names_a_file_and_a_section_that_exist(doc):
    assert doc != README or links(doc), "the README links to nothing"
    for target in links(doc):
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.exists(), f"{doc.name} links to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{doc.name} links to {target}: no such heading"


def named_by(doc: Path) -> set[Path]:
    return {(doc.parent / t.partition("#")[0]).resolve() for t in links(doc)}


def test_the_readme_links_the_docs_and_every_screenshot_is_shown():
    """Every docs/*.md is linked from the README; every screenshot is shown by the README or by
    the docs page of its feature."""
    named = named_by(README)
    for path in (ROOT / "docs").glob("*.md"):
        assert path.resolve() in named, f"README.md never links {path.relative_to(ROOT)}"
    shown = named.union(*(named_by(doc) for doc in (ROOT / "docs").glob("*.md")))
    for path in (ROOT / "docs" / "screenshots").glob("*.png"):
        assert path.resolve() in shown, f"no page shows {path.relative_to(ROOT)}"


def test_the_api_table_lists_exactly_the_apps_routes(client):
    """Each route of a row of the README's API table (its first cell may name several) is a
    route of /openapi.json, and each route is in a row."""
    section = README.read_text().split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    firsts = re.findall(r"^\| (`[^|]*)\|", section, flags=re.M)  # a row's first cell
    rows = {r for cell in firsts for r in re.findall(r"`(GET|POST|DELETE) (/[^`?]*)", cell)}
    rows.discard(("GET", "/metrics"))  # served, and on purpose not in the OpenAPI document
    paths = client.get("/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert rows == routes, (f"in the README, not the app: {sorted(rows - routes)}; "
                            f"in the app, not the README: {sorted(routes - rows)}")


def sessions() -> list[tuple[str, bool, str]]:
    """The README's `$ namelab sample|score ...` lines and the output shown under each: (the
    command, whether it echoes the exit status, the output)."""
    found, blocks, block = [], [], None
    for line in README.read_text().splitlines(keepends=True):
        if line.startswith("```") and block is None:  # opens a block: ```sh, ```
            block = []
        elif line.startswith("```"):  # closes it
            blocks.append("".join(block))
            block = None
        elif block is not None:
            block.append(line)
    for block in blocks:
        for command in re.split(r"^(?=\$ )", block, flags=re.M):
            head, _, shown = command.partition("\n")
            m = re.fullmatch(r'\$ (namelab (?:sample|score) .*?)(; echo "exit \$\?")?', head)
            if m:
                found.append((m[1], bool(m[2]), shown))
    return found


def test_the_readme_shows_sample_and_score_sessions():
    kinds = {command.split()[1] for command, _, _ in sessions()}
    assert kinds == {"sample", "score"}


@pytest.mark.parametrize(("command", "echo", "shown"), sessions(), ids=lambda v: str(v)[:60])
def test_a_readme_session_prints_what_the_readme_shows(capsys, command, echo, shown):
    """Run as a terminal shows it: standard output, then the errors, then `exit N`."""
    argv = command.split()[1:]
    model = argv[argv.index("--model") + 1]
    if not (ROOT / "models" / f"{model}.safetensors").exists():
        pytest.skip(f"no shipped model {model}")
    code = main(argv)
    out, err = capsys.readouterr()
    printed = out + err + (f"exit {code}\n" if echo else "")
    assert printed == shown, f"README.md shows another output for `{command}`; update it"
