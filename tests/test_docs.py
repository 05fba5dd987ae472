"""Every ``bnsearch <command> --option`` that the README and docs/ show exists (checked against
each command's ``--help``), the command reference lists every option of every command, and the
architecture page's tree names every module of the package."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnsearch.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
REFERENCE = ROOT / "docs" / "commands.md"

_OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")
# A command line: `bnsearch ...` at its start, after `$ `, `time`, `python -m` or VAR=value.
_CALL = re.compile(r"^(?:\$\s+)?(?:\S*time\s+)?(?:[A-Z_]+=\S*\s+)*(?:python -m\s+)?bnsearch((?:\s+[^\s|;&#`)]+)*)")
_HEADING_COMMAND = re.compile(r"^#+ .*`bnsearch (\w+)`")


@cache
def help_options(command: str | None) -> frozenset[str]:
    """The options ``bnsearch [command] --help`` lists (the global ones for ``None``): the first
    column of its option lines, not options its help text mentions."""
    args = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, f"bnsearch {' '.join(args)} failed:\n{result.output}"
    columns = [re.split(r"\s{2,}", line.strip())[0] for line in result.output.splitlines() if line.startswith("  -")]
    return frozenset(opt for column in columns for opt in _OPTION.findall(column))


@cache
def command_names() -> frozenset[str]:
    return frozenset(c.name for c in app.registered_commands if c.name) | frozenset(
        c.callback.__name__ for c in app.registered_commands if c.callback is not None and not c.name
    )


def _code_spans(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every line of a fenced block (continued lines joined) and every
    inline `code` span."""
    out: list[tuple[int, str]] = []
    in_fence = False
    pending: tuple[int, str] | None = None
    for n, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            code = re.sub(r"(^|\s)#.*$", "", line).rstrip()  # a shell comment is prose
            if pending is not None:
                n, code = pending[0], pending[1] + " " + code.strip()
            pending = (n, code[:-1]) if code.endswith("\\") else None
            if pending is None:
                out.append((n, code.strip()))
        else:
            out.extend((n, span.strip()) for span in re.findall(r"`([^`]+)`", line))
    return out


def shown_calls(text: str) -> list[tuple[int, str | None, list[str]]]:
    """(line, command, options) of every ``bnsearch ...`` call in code; options before the
    command are global ones (``bnsearch -v run``), reported with command None."""
    calls = []
    for n, span in _code_spans(text):
        for m in _CALL.finditer(span):  # at most one: the pattern is anchored
            tokens = m.group(1).split()
            command = None
            before: list[str] = []
            after: list[str] = []
            for tok in tokens:
                if command is None and not tok.startswith("-"):
                    command = tok
                elif tok.startswith("-"):
                    (after if command else before).append(tok.split("=", 1)[0])
            if before:
                calls.append((n, None, before))
            if command is not None and re.fullmatch(r"[a-z]+", command):
                calls.append((n, command, after))
    return calls


def table_options(text: str) -> list[tuple[int, str, str]]:
    """(line, command, option) for each ``--option`` in the first cell of a table row under a
    heading that names a command (the reference's option tables)."""
    out = []
    command = None
    for n, line in enumerate(text.splitlines(), start=1):
        heading = _HEADING_COMMAND.match(line)
        if line.startswith("#"):
            command = heading.group(1) if heading else None
        elif command and line.startswith("|"):
            first = line.split("|")[1]
            out.extend((n, command, opt) for opt in _OPTION.findall(" ".join(re.findall(r"`([^`]+)`", first))))
    return out


def problems(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    for n, command, options in shown_calls(text):
        if command is not None and command not in command_names():
            found.append(f"{path.name}:{n}: no command 'bnsearch {command}'")
            continue
        for opt in options:
            if opt not in help_options(command):
                found.append(f"{path.name}:{n}: 'bnsearch {command or ''} {opt}': no such option")
    for n, command, opt in table_options(text):
        if command not in command_names():
            found.append(f"{path.name}:{n}: no command 'bnsearch {command}'")
        elif opt not in help_options(command):
            found.append(f"{path.name}:{n}: 'bnsearch {command} {opt}': no such option")
    return found


@pytest.mark.parametrize("path", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_shown_commands_and_options_exist(path: Path) -> None:
    assert not problems(path), "\n".join(problems(path))


def test_the_pages_show_commands() -> None:
    """The parser finds what the pages show (a parser that finds nothing would pass everything)."""
    calls = [c for p in PAGES for c in shown_calls(p.read_text(encoding="utf-8"))]
    assert {c for _, c, _ in calls} >= set(command_names())
    assert sum(len(opts) for _, _, opts in calls) > 50


def test_a_wrong_option_or_command_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Run `bnsearch run --trails 5`, then\n```bash\nbnsearch -v reprot --study x  # comment --ignored\n"
        "/usr/bin/time bnsearch run --trials 3 \\\n    --study-nam x\n```\n"
        "## `bnsearch export`\n| `--fromat` | csv |\n",
        encoding="utf-8",
    )
    assert problems(page) == [
        "page.md:1: 'bnsearch run --trails': no such option",
        "page.md:3: no command 'bnsearch reprot'",
        "page.md:4: 'bnsearch run --study-nam': no such option",
        "page.md:8: 'bnsearch export --fromat': no such option",
    ]


@pytest.mark.parametrize("command", sorted(command_names()))
def test_the_reference_lists_every_option(command: str) -> None:
    listed = {opt for _, c, opt in table_options(REFERENCE.read_text(encoding="utf-8")) if c == command}
    missing = sorted(help_options(command) - listed - {"--help"})
    assert not missing, f"docs/commands.md: bnsearch {command} lacks {', '.join(missing)}"


def test_the_reference_lists_the_global_options() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    missing = sorted(o for o in help_options(None) - {"--help"} if f"`{o}" not in text)
    assert not missing, f"docs/commands.md lacks the global options {', '.join(missing)}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text, fence, out = path.read_text(encoding="utf-8"), False, set()
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


@pytest.mark.parametrize("path", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_links_between_pages_resolve(path: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


ARCHITECTURE = ROOT / "docs" / "architecture.md"
_TREE_NAME = re.compile(r"^(?:\w+\.py|\w+/)$")


def architecture_tree(text: str) -> set[str]:
    """Paths the first ``bnsearch/`` tree of ``text`` names (``core/space.py``, ``search/``): each
    line's leading names, nested under the folder above them by indentation."""
    lines = text.split("```\nbnsearch/\n", 1)[1].split("```", 1)[0].splitlines()
    folders: list[tuple[int, str]] = [(0, "")]
    out: set[str] = set()
    for line in lines:
        indent = len(line) - len(line.lstrip())
        while len(folders) > 1 and folders[-1][0] >= indent:
            folders.pop()
        names = []
        for word in line.split():
            if not _TREE_NAME.match(word):
                break
            names.append(folders[-1][1] + word)
        out.update(names)
        if len(names) == 1 and names[0].endswith("/"):
            folders.append((indent, names[0]))
    return out


def test_the_architecture_tree_reads_nesting_and_several_names_a_line() -> None:
    text = "```\nbnsearch/\n  a.py  b.py    two\n  pkg/    a package\n    c.py   in it\n  d.py  top\n```\n"
    assert architecture_tree(text) == {"a.py", "b.py", "pkg/", "pkg/c.py", "d.py"}


def test_the_architecture_page_names_every_module_of_the_package() -> None:
    """A package counts by its folder (``samplers/``), any other module by its path."""
    named = architecture_tree(ARCHITECTURE.read_text(encoding="utf-8"))
    package = ROOT / "bnsearch"
    missing = sorted(
        rel
        for path in package.rglob("*.py")
        for rel in [
            path.parent.relative_to(package).as_posix() + "/"
            if path.name == "__init__.py" and path.parent != package
            else path.relative_to(package).as_posix()
        ]
        if rel not in named
    )
    assert not missing, f"docs/architecture.md's tree does not name: {', '.join(missing)}"
