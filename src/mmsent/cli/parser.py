"""The shape every `mmsent` command shares: global flags, `--help-all`, an example at the end.

Plain `--help` fits on a screen: a command's rarely used options are added as usual and then
hidden (`hide`); `--help-all` shows them too. `-v/--verbose` and `--quiet` are accepted before
the command and after it.
"""

from __future__ import annotations

import argparse
import difflib
import re
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples keep their lines; option names get a wider column than argparse's 24."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=24)


class TopParser(argparse.ArgumentParser):
    """`mmsent` itself: an unknown command names the nearest one (`mmsent rnu`: did you mean run?)."""

    def error(self, message: str):
        choice = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if choice:
            known = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
            names = list(known[0].choices) if known else []
            close = difflib.get_close_matches(choice.group(1), names, n=1, cutoff=0.6)
            message = f"unknown command {choice.group(1)!r}" + (
                f" (did you mean {close[0]}?)" if close else f"; the commands are {', '.join(names)}"
            )
        super().error(message)


class CommandParser(argparse.ArgumentParser):
    """A command's parser: an unknown option is its own error (with its usage), not the top
    parser's, and a near miss names the spelling it takes (`--skip-bad`: `--data.skip_bad`,
    `--imgae`: `--image`)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self.near_miss(extras)}")
        return namespace, extras

    def near_miss(self, extras: list[str]) -> str:
        """The flags an old or misspelt one means: same name but for dashes, or for an
        undotted one (`--skip-bad`), the flags whose last part it is."""
        known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        plain = {o: o.lstrip("-").replace("-", "_") for o in known}
        for extra in extras:
            if not extra.startswith("--"):
                continue
            typed = extra.split("=")[0].lstrip("-").replace("-", "_")
            names = [o for o in known if typed.startswith("no_") or not o.startswith("--no-")]
            same = [o for o in names if plain[o] == typed]
            if not same and "." not in typed:
                same = [o for o in names if plain[o].rpartition(".")[2] == typed]
            if not same:  # a typo: the closest spelling, by edit similarity
                same = difflib.get_close_matches("--" + typed, names, n=1, cutoff=0.6)
            if same:
                return f" (did you mean {' or '.join(same)}?)"
        return ""


class HelpAll(argparse.Action):
    """`--help-all`: show the options that plain `--help` leaves out, then exit."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.hidden: list[tuple[argparse.Action, str]] = []

    def __call__(self, parser, namespace, values, option_string=None):
        for action, text in self.hidden:
            action.help = text
        parser.print_help()
        parser.exit()


def hide(parser: argparse.ArgumentParser, action: argparse.Action) -> None:
    """Leave `action` out of plain --help; --help-all shows it."""
    help_all: HelpAll = parser.help_all
    help_all.hidden.append((action, action.help))
    action.help = argparse.SUPPRESS
    help_all.help = f"list every option ({len(help_all.hidden)} more than --help shows)"


def group(parser: argparse.ArgumentParser, title: str):
    """The parser's argument group of this title, made on first use."""
    groups = parser.__dict__.setdefault("groups_by_title", {})
    if title not in groups:
        groups[title] = parser.add_argument_group(title)
    return groups[title]


def add_global_flags(parser: argparse.ArgumentParser, after_command: bool = False) -> None:
    # After the command the flags default to "not given", so `mmsent -v run` keeps its -v.
    default = {"default": argparse.SUPPRESS} if after_command else {}
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every step; show tracebacks", **default
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars", **default)


def add_command(commands, name: str, func, summary: str, example: str, description: str = "", usage=None):
    """A subcommand: its one-line summary in `mmsent --help`, `description` (default: the summary)
    at the top of its own help, and `example` (command lines) at the end."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description or summary[0].upper() + summary[1:] + ".", 90),
        epilog="example:\n" + textwrap.indent(textwrap.dedent(example).strip("\n"), "  "),
        formatter_class=HelpFormatter,
        usage=usage,
        allow_abbrev=False,  # one spelling: `--train.max` is not `--train.max_epochs`
    )
    parser.help_all = parser.add_argument("--help-all", action=HelpAll, help="list every option")
    parser.set_defaults(func=func, parser=parser)
    add_global_flags(parser, after_command=True)
    return parser
