"""Write docs/cli.md, the command-line reference, from the parser itself (every option of every
command, as `--help-all` shows it). `--check` exits 1 when the file is out of date (CI runs it).

    .venv/bin/python scripts/cli_reference.py            # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check    # is it up to date?
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def help_all(parser: argparse.ArgumentParser) -> str:
    """What `--help-all` prints, at 100 columns, without exiting."""
    for action in parser._actions:
        hidden = getattr(action, "hidden", None)
        for each, text in hidden or []:
            each.help = text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        parser.print_help()
    return out.getvalue()


def reference() -> str:
    os.environ["COLUMNS"] = "100"
    from mmsent.cli.main import build_parser

    top = build_parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# Command-line reference",
        "",
        "Generated from the parser by `scripts/cli_reference.py`: every option of every command, as",
        "`mmsent COMMAND --help-all` prints it. The user guide says when to use which.",
        "",
        "## mmsent",
        "",
        "```text",
        help_all(top).rstrip(),
        "```",
        "",
    ]
    for name, parser in commands.choices.items():
        parts += [f"## mmsent {name}", "", "```text", help_all(parser).rstrip(), "```", ""]
    return "\n".join(parts)


def main() -> int:
    text = reference()
    if "--check" in sys.argv[1:]:
        if not TARGET.is_file() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
