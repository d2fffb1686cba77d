"""The docs and the README show no code that a test does not run.

The rule (issue 10): every code example is included from a tested file, never copied into a page. So, in every
Markdown page under docs/ and in README.md:

* a fenced block is either a MyST directive or a shell block of commands from ``ALLOWED_COMMANDS``;
* the directives that show code are ``{literalinclude}`` (its file must exist and its ``:start-after:`` (or
  ``:start-at:``) / ``:end-before:`` markers must be found in it, in that order) and ``{include}`` of an existing file; ``{eval-rst}``
  may only hold ``automodule`` directives (the API reference); ``{code-block}`` and the like are refused;
* indented code blocks are refused (they are copied code too).

README.md is also small (under 10,000 bytes), names the two commands a newcomer needs exactly once each, and its
links into docs/ point at pages that exist. The Sphinx build itself (warnings are errors) runs when Sphinx is
installed, on Airflow 3.3+ (the API reference documents ``retries.task_policy``, which needs 3.3).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: The only commands a page may show as text: the README's two commands and the install line.
ALLOWED_COMMANDS = {"bash .ci/demo", "bash .ci/test", "pip install airflow-provider-norce"}
SHELL_LANGUAGES = {"bash", "console", "shell", "sh"}
#: Directives that show no code of their own.
PROSE_DIRECTIVES = {"toctree", "note", "warning", "tip", "important", "seealso", "admonition"}
README_LIMIT = 10_000


def pages() -> list[Path]:
    found = sorted(p for p in DOCS.rglob("*.md") if "examples" not in p.relative_to(DOCS).parts)
    return [*found, README]


def fences(page: Path) -> list[tuple[int, str, str, str]]:
    """``(line, token type, info string, content)`` of every fenced and indented code block of ``page``."""
    tokens = MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8"))
    return [
        (t.map[0] + 1 if t.map else 0, t.type, t.info.strip(), t.content)
        for t in tokens
        if t.type in ("fence", "code_block")
    ]


def directive_options(content: str) -> dict[str, str]:
    """MyST's ``:name: value`` option lines at the top of a directive's body, quotes removed."""
    options: dict[str, str] = {}
    for line in content.splitlines():
        match = re.match(r"\s*:([\w-]+):\s*(.*)$", line)
        if not match:
            break
        value = match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        options[match.group(1)] = value
    return options


def shell_commands(content: str) -> list[str]:
    """The commands of a shell block: each non-empty line without a ``$`` prompt and a trailing comment."""
    commands = []
    for line in content.splitlines():
        command = re.sub(r"\s+#.*$", "", line.strip().removeprefix("$ ")).strip()
        if command:
            commands.append(command)
    return commands


def block_problems(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    where = page.relative_to(root)
    for line, kind, info, content in fences(page):
        at = f"{where}:{line}"
        if kind == "code_block":
            problems.append(f"{at}: an indented code block; include the code from a tested file instead")
            continue
        directive = re.match(r"\{([\w-]+)\}\s*(.*)$", info)
        if directive is None:
            language = info.split()[0] if info else ""
            if language not in SHELL_LANGUAGES:
                problems.append(
                    f"{at}: a ```{language or '(no language)'} block; use {{literalinclude}} of a tested file"
                )
                continue
            for command in shell_commands(content):
                if command not in ALLOWED_COMMANDS:
                    problems.append(
                        f"{at}: the command {command!r} is none of {sorted(ALLOWED_COMMANDS)}; put it in a "
                        "tested script (docs/examples/*.sh) and include it"
                    )
            continue
        name, argument = directive.groups()
        if name in ("literalinclude", "include"):
            target = (page.parent / argument).resolve()
            if not target.is_file():
                problems.append(f"{at}: {{{name}}} {argument}: no such file")
                continue
            text = target.read_text(encoding="utf-8")
            options = directive_options(content)
            start = options.get("start-after", options.get("start-at"))
            end = options.get("end-before")
            position = 0
            if start is not None:
                position = text.find(start)
                if position < 0:
                    problems.append(f"{at}: marker {start!r} is not in {argument}")
                    continue
            if end is not None and text.find(end, position) < 0:
                problems.append(f"{at}: marker {end!r} is not in {argument} after the start marker")
        elif name == "eval-rst":
            for rst_line in content.splitlines():
                if rst_line.strip() and not rst_line.strip().startswith(".. automodule::"):
                    problems.append(
                        f"{at}: {{eval-rst}} may hold automodule directives only, not {rst_line!r}"
                    )
        elif name not in PROSE_DIRECTIVES:
            problems.append(
                f"{at}: the {{{name}}} directive; code comes from {{literalinclude}} of a tested file"
            )
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_code_in_pages_comes_from_tested_files(page):
    assert block_problems(page) == []


def test_the_rule_catches_copied_code(tmp_path):
    """The checker itself: copied code, an unknown command, a missing file and a missing marker are found."""
    (tmp_path / "example.py").write_text("# [START a]\nx = 1\n# [END a]\n")
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n"
        "```bash\nbash .ci/demo\nrm -rf /\n```\n\n"
        "```{literalinclude} missing.py\n```\n\n"
        '```{literalinclude} example.py\n:start-after: "# [START b]"\n```\n\n'
        '```{literalinclude} example.py\n:start-after: "# [START a]"\n:end-before: "# [END a]"\n```\n\n'
        "```{code-block} python\nx = 1\n```\n\n"
        "text\n\n    indented = 1\n"
    )
    problems = block_problems(page, root=tmp_path)
    assert [p.split(": ", 1)[0] for p in problems] == [f"page.md:{n}" for n in (1, 5, 10, 13, 22, 28)]
    assert "rm -rf /" in problems[1]
    assert "no such file" in problems[2]
    assert "[START b]" in problems[3]


def test_readme_is_short():
    size = README.stat().st_size
    assert size < README_LIMIT, (
        f"README.md is {size} bytes; keep it under {README_LIMIT} (move detail to docs/)"
    )


def test_readme_has_the_two_commands_once_each():
    commands = [
        command
        for _, kind, info, content in fences(README)
        if kind == "fence" and info.split()[:1] and info.split()[0] in SHELL_LANGUAGES
        for command in shell_commands(content)
    ]
    assert commands.count("bash .ci/demo") == 1
    assert commands.count("bash .ci/test") == 1


def test_readme_links_into_docs_exist():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?:docs|dags_examples)/[^)#\s]+)", text)
    assert links, "README.md links to no docs page"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert missing == []


def _airflow_33() -> bool:
    from importlib.metadata import version

    major, minor = (int(part) for part in version("apache-airflow").split(".")[:2])
    return (major, minor) >= (3, 3)


@pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None, reason="Sphinx is not installed (extra: docs)"
)
@pytest.mark.skipif(
    not _airflow_33(), reason="the API reference documents retries.task_policy (Airflow 3.3+)"
)
def test_sphinx_build_has_no_warnings(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "html",
            "docs",
            str(tmp_path / "html"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
