"""The documentation holds: the CLI reference matches the parser, every `mmsent` command line in
the README and docs/ parses, and the site builds (MkDocs, strict)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmsent.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks that hold shell commands (no language, or bash/sh)."""
    blocks, current, language = [], None, ""
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\w*)", line)
        if fence and current is None:
            current, language = [], fence.group(1)
        elif fence:
            if language in ("", "bash", "sh", "shell", "console"):
                blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    # indented code blocks (four spaces) hold commands too, in the README's quick start
    blocks += [line[4:] for line in text.splitlines() if re.match(r"^    \S", line) and "mmsent " in line]
    return blocks


def command_lines(text: str) -> list[str]:
    """`mmsent ...` lines inside shell blocks, continuation lines joined, comments and shell glue cut."""
    found = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            for prefix in (".venv/bin/mmsent ", "mmsent ", "python -m mmsent "):
                at = line.find(prefix)
                if at == 0 or (at > 0 and line[at - 1] in " ;&(`"):
                    command = line[at + len(prefix) :]
                    command = re.split(r"\s(?:#|&&|\|\||\||;|&)(?:\s|$)", command)[0]
                    found.append(command.strip().rstrip("&").strip())
                    break
    return found


EXAMPLES = [
    (page.relative_to(ROOT).as_posix(), line) for page in PAGES for line in command_lines(page.read_text())
]


def test_the_docs_show_commands_at_all():
    assert len(EXAMPLES) > 15


@pytest.mark.parametrize("page, line", EXAMPLES)
def test_every_documented_command_line_parses(page, line):
    parser = build_parser()
    try:
        parser.parse_args([word for word in shlex.split(line) if word != "..."])  # "...": and so on
    except SystemExit as stop:  # argparse's way of refusing
        pytest.fail(f"{page}: `mmsent {line}` does not parse (exit {stop.code})")


def test_the_cli_reference_is_generated_from_the_parser():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("mkdocs") is None and not Path(sys.executable).with_name("mkdocs").exists(),
                    reason="mkdocs is installed by scripts/setup --dev")  # fmt: skip
def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).with_name("mkdocs"))
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
