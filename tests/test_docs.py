"""The documentation: README.md and docs/*.md link only to files the repo has, the README stays a
short page, docs/layout.md names every file of the package and the benchmarks, the README still
holds the commands CI and the quick start run, and no file cites a document the repo does not
ship or a path outside it."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
README_MAX_LINES = 200
# Markdown links and images: [text](target) / ![alt](target); the target up to whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# Nothing may cite these: a spec file the repo never shipped, and a folder outside the repo.
FORBIDDEN = ("paper" + "-spec", "../" + "shared")


def relative_links(path: Path):
    """(line number, target) of every link in ``path`` that is not a URL or a pure anchor."""
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # https:, mailto:, ... or a heading of the same page
            yield number, target


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_that_exists(page):
    broken = []
    for number, target in relative_links(page):
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (page.parent / path).resolve()
        if not resolved.exists() or REPO.resolve() not in (resolved, *resolved.parents):
            broken.append(f"{page.relative_to(REPO)}:{number}: {target}")
    assert not broken, "links to files that do not exist (or lie outside the repo):\n" + "\n".join(broken)


def test_a_quoted_name_is_no_citation():
    word = FORBIDDEN[0]
    assert list(citations(f'assert "{word}" not in text', word)) == []
    assert len(list(citations(f"(see {word} §1) and '{word}'", word))) == 1


def test_the_link_check_sees_links():
    # guards the regex: the README links the docs, so a check that finds nothing is broken itself
    targets = [target for _, target in relative_links(README)]
    assert "docs/tests.md" in targets and "docs/paper.md" in targets


def test_the_readme_is_a_short_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: move the detail to a docs/ page and link it"
    )


def test_the_readme_keeps_the_quick_start_commands_and_ci_runs_the_test_one():
    readme = README.read_text(encoding="utf-8")
    assert re.search(r"^make run\b", readme, re.M) and re.search(r"^make test\b", readme, re.M)
    # .ci/run runs the README's test command: its last command line must be a command the README shows
    ci = REPO / ".ci" / "run"
    if not ci.exists():
        pytest.skip(".ci/run is not in this checkout")
    commands = [line.strip() for line in ci.read_text().splitlines() if line.strip() and not line.startswith("#")]
    command = shlex.split(commands[-1])
    assert command == ["make", "test"], f".ci/run's last command is {commands[-1]!r}, not the README's `make test`"


def test_the_layout_names_every_file_of_the_package_and_the_benchmarks():
    layout = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    missing = []
    for folder in ("openrlhf_nsr", "benchmarks"):
        for path in sorted((REPO / folder).iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix != ".pyc":
                if f"`{path.name}`" not in layout:
                    missing.append(f"{folder}/{path.name}")
    assert not missing, "docs/layout.md does not name: " + ", ".join(missing) + " (one line each)"


def repo_text_files():
    """The repo's files (tracked, and new ones git does not ignore) that are text, as (path, text)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no file list to scan")
    for name in sorted(set(listed.decode("utf-8", "surrogateescape").split("\0")) - {""}):
        path = REPO / name
        if not path.is_file():
            continue  # deleted in the work tree
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary (the parquet data files)
        try:
            yield name, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


def citations(line: str, word: str):
    """The places ``word`` occurs in ``line`` other than as a quoted name ("word" or 'word': a check or a
    message that names what must not be cited is no citation)."""
    for match in re.finditer(re.escape(word), line):
        before, after = line[match.start() - 1 : match.start()], line[match.end() : match.end() + 1]
        if not (before in ("'", '"') and after == before):
            yield match.start()


def test_no_file_cites_a_document_the_repo_does_not_ship_or_a_path_outside_it():
    found = []
    for name, text in repo_text_files():
        for number, line in enumerate(text.splitlines(), 1):
            for word in FORBIDDEN:
                if any(True for _ in citations(line, word)):
                    found.append(f"{name}:{number}: {word}")
    assert not found, (
        "cite docs/paper.md §N (§1 objectives, §2 training setup, §3 evaluation protocol, §4 reference numbers, "
        "§5 practical advice) or the paper's tables and figures, and no path outside the repo:\n" + "\n".join(found)
    )
