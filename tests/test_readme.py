"""README.md and docs/*.md: every relative link points at a file of this repository (and a heading, where it names
one), every command the README gives exists, and the README stays the front door (a size limit)."""
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_CHARS = 10_500

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def pages() -> list[Path]:
    return [p for p in PAGES if p.exists()]


def without_code(text: str) -> str:
    """Markdown text with fenced blocks and code spans removed (links inside code are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def code_of(text: str) -> list[str]:
    """The fenced blocks and code spans of a Markdown text: where commands are given."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    return blocks + CODE_SPAN.findall(FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (letters of any script, digits, spaces,
    hyphens and underscores kept), spaces as hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in LINK.findall(without_code(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):      # http:, https:, mailto: ...
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}: {target}"
        if not dest.is_relative_to(ROOT):
            problems.append(f"{where} points outside the repository")
        elif not dest.exists():
            problems.append(f"{where} points at a file that does not exist")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{where} names a heading {dest.name} does not have")
    return problems


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_of_the_repository(path):
    assert broken_links(path) == []


def test_a_broken_link_is_caught(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# A heading\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/there.md) [ok](docs/there.md#a-heading) `[in code](nowhere.md)`\n"
                    "[gone](docs/missing.md) [no heading](docs/there.md#other) [out](../outside.md)\n",
                    encoding="utf-8")
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "missing.md" in problems[0] and "#other" in problems[1] and "outside" in problems[2]


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M)}


def deid_commands(capsys, argv: list[str]) -> set[str]:
    """The choices of deid's parser at argv (its subcommands, or a subcommand's actions), from --help."""
    from deid.cli import main
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    usage = capsys.readouterr().out
    return set(re.search(r"\{([a-z,-]+)\}", usage).group(1).split(","))


def readme_code() -> str:
    """The README's code, shell comments left out (`make run     # ... make a sample table` gives one target)."""
    code = "\n".join(code_of(README.read_text(encoding="utf-8")))
    return re.sub(r"(^|\s)#.*$", "", code, flags=re.M)


def test_readme_keeps_the_two_commands_of_a_fresh_machine():
    text = README.read_text(encoding="utf-8")
    assert "make run     # set up, make a sample NOTE Delta table, run the Spark job on it, print a summary" in text
    assert "make test    # set up and run the test suite" in text


def test_every_make_target_the_readme_gives_exists():
    given = set(re.findall(r"(?<![\w-])make ([a-z][\w-]*)(?!=)", readme_code()))
    assert {"run", "test"} <= given
    assert given - makefile_targets() == set()


def test_every_deid_subcommand_the_readme_gives_exists(capsys):
    code = readme_code()
    # (?<!from ): not `from deid import`
    given = set(re.findall(r"(?<![\w./-])(?<!from )(?:\.venv/bin/)?deid ([a-z][\w-]*)", code))
    assert given, "the README gives no deid command"
    assert given - deid_commands(capsys, []) == set()
    actions = set(re.findall(r"(?<![\w./-])(?:\.venv/bin/)?deid review ([a-z][\w-]*)", code))
    assert actions - deid_commands(capsys, ["review"]) == set()


def test_every_script_and_config_path_the_pages_give_exists():
    missing = []
    for path in pages():
        for code in code_of(path.read_text(encoding="utf-8")):
            for ref in re.findall(r"(?<![\w./-])((?:jobs|bench|conf|udfs|tests|deid|resources)/[\w./-]*\w)", code):
                if not (ROOT / ref).exists():
                    missing.append(f"{path.relative_to(ROOT)}: {ref}")
    assert missing == []


def test_readme_is_the_front_door():
    size = len(README.read_text(encoding="utf-8"))
    assert size <= README_MAX_CHARS, f"README.md has {size} characters; details go to docs/, history to CHANGELOG.md"


def test_the_readmes_python_example_runs_as_written(capsys):
    """The notebook API as the README shows it: `from deid import Pipeline`, one note with its person and date."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    assert blocks, "the README shows the Python API"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)   # noqa: S102 - the README's own example
    result = namespace["result"]
    assert result.masked[3] == "患者〔姓名〕，2023年入院。" and result.masked[1] != result.masked[3]
    assert "NAME" in capsys.readouterr().out
