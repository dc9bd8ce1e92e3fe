"""Configuration fields as command-line flags, one spelling each, plus a YAML file.

A field is `--section.field`, spelled as in configs/default.yaml (`--train.max_epochs 30`);
a boolean also has `--no-section.field`. Two fields people type all the time have short
names instead (`--data` for data.root, `--cache` for encoders.cache); `--out` and `--name`
are top-level fields already. Each command offers only the fields it reads. The help text
of a flag is the docstring under its field in the dataclass. `--help` lists the everyday
flags, `--help-all` every one. Precedence: defaults < `--config FILE` < flags.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import sys
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import yaml

from mmsent.cli.parser import group, hide
from mmsent.config import RunConfig, from_plain, to_plain
from mmsent.errors import BadSetting, MmsentError, UsageError

# Which fields a command reads: sections or single fields, as `picks` of add_run_options.
EXTRACTION = ("data", "encoders")
OUTPUT = ("out", "name")
DEVICES = ("train.devices", "train.accelerator", "train.num_nodes", "train.precision")
HEAD_TRAINING = (*EXTRACTION, "split", "train", *OUTPUT)  # what `mmsent train` reads
# The single split of `compare` and `finetune`: the main job cross-validates and never reads them.
SINGLE_SPLIT = ("split.val_fraction", "split.fold")

SHORT_NAMES = {"data.root": "--data", "encoders.cache": "--cache"}
# Shown by every command's plain --help where the command takes them; the rest wait for --help-all.
EVERYDAY = (
    "data.root",
    "out",
    "name",
    "encoders.cache",
    "quality",
    "encoders.image",
    "encoders.text",
    "data.skip_bad",
    "train.heads",
    "train.seed",
    "train.max_epochs",
    "train.devices",
)


@dataclasses.dataclass(frozen=True)
class Field:
    name: str  # dotted, as in the YAML file
    hint: Any
    default: Any
    doc: str


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a dataclass, one line per field ('' without source)."""
    try:
        tree = ast.parse(Path(sys.modules[cls.__module__].__file__).read_text(encoding="utf-8"))
    except (OSError, TypeError):  # no source next to the bytecode: the flags go without their text
        return {}
    body = next(n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def config_fields(config, prefix: str = "") -> Iterator[Field]:
    """Every leaf field of a config dataclass instance, with the instance's values as defaults."""
    hints = typing.get_type_hints(type(config))
    docs = field_docs(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            yield from config_fields(value, f"{prefix}{f.name}.")
        else:
            yield Field(prefix + f.name, hints[f.name], value, docs.get(f.name, ""))


def picked(name: str, picks: Iterable[str]) -> bool:
    """Whether dotted `name` is one of `picks` or inside a section `picks` names."""
    return any(name == p or name.startswith(p + ".") for p in picks)


def shown(value) -> str:
    """A default as configs/default.yaml writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return repr(value) if value == "" else str(value)


def add_field(parser, group, field: Field, everyday: bool, default: str | None = None) -> argparse.Action:
    flag = SHORT_NAMES.get(field.name, f"--{field.name}")
    text = f"{field.doc} (default: {default or shown(field.default)})".lstrip()
    kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": text}
    origin = typing.get_origin(field.hint)
    if field.hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is list:
        kwargs.update(nargs="+", type=typing.get_args(field.hint)[0], metavar="NAME")
    elif origin is Literal:
        kwargs.update(choices=list(typing.get_args(field.hint)))
    else:
        kwargs.update(type=field.hint, metavar={int: "N", float: "X", Path: "PATH"}.get(field.hint, "TEXT"))
    action = group.add_argument(flag, **kwargs)
    if not everyday:
        hide(parser, action)
    return action


def add_fields(
    parser: argparse.ArgumentParser,
    config,
    picks: Iterable[str],
    prefix: str = "",
    everyday: Iterable[str] = EVERYDAY,
    title: str | None = None,
    omit: Iterable[str] = (),
    defaults: dict[str, str] | None = None,
) -> None:
    """Flags for the fields of `config` that `picks` names (less `omit`): the `everyday` ones in
    one group, the others in a group per section (or under `title`), shown by --help-all.
    `defaults` words the defaults a command sets itself (name: what --help says)."""
    defaults = defaults or {}
    picks, everyday, omit = tuple(picks), tuple(everyday), tuple(omit)
    fields = [f for f in config_fields(config, prefix) if picked(f.name, picks) and not picked(f.name, omit)]
    # The everyday ones first, in `everyday`'s order; the rest in the dataclasses' order.
    order = {name: i for i, name in enumerate(everyday)}
    for field in sorted(fields, key=lambda f: order.get(f.name, len(order))):
        if field.name in order:
            add_field(parser, group(parser, "everyday options"), field, True, defaults.get(field.name))
        else:
            section = title or (field.name.rpartition(".")[0] or "other") + " options"
            add_field(parser, group(parser, section), field, False, defaults.get(field.name))


def add_run_options(
    parser: argparse.ArgumentParser,
    picks: Iterable[str],
    omit: Iterable[str] = (),
    defaults: dict[str, str] | None = None,
) -> None:
    """`--config FILE` and the flags of the run configuration's fields that `picks` names
    (`defaults`: how --help words the defaults the command sets itself)."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML file of options, nested as configs/default.yaml; flags win",
    )
    add_fields(parser, RunConfig(), picks, omit=omit, defaults=defaults)


def resolve_config(args: argparse.Namespace, defaults: RunConfig | None = None) -> RunConfig:
    """Defaults, then the YAML file, then the flags given on the command line."""
    data: dict[str, Any] = to_plain(defaults or RunConfig())
    if getattr(args, "config", None):
        merge(data, read_yaml(args.config), str(args.config))
    for field in config_fields(RunConfig()):
        if hasattr(args, field.name):
            set_dotted(data, field.name, getattr(args, field.name))
    return settings_checked(args, RunConfig, data)


def resolve_section(args: argparse.Namespace, prefix: str, config) -> Any:
    """`config` (a dataclass instance) with the `--<prefix>.<field>` flags given applied."""
    data = to_plain(config)
    for field in config_fields(config):
        if hasattr(args, f"{prefix}.{field.name}"):
            set_dotted(data, field.name, getattr(args, f"{prefix}.{field.name}"))
    return settings_checked(args, type(config), data, prefix=f"{prefix}.")


def settings_checked(args: argparse.Namespace, cls, data: dict, prefix: str = ""):
    """The configuration built from `data`, every setting checked before anything is made: a bad
    value typed as a flag is a usage error (exit 2), one from the --config file names the file."""
    try:
        return from_plain(cls, data, prefix)
    except BadSetting as error:
        if hasattr(args, error.option):
            flag = SHORT_NAMES.get(error.option, f"--{error.option}")
            raise UsageError(f"argument {flag}: {error.problem}") from None
        raise BadSetting(error.option, error.problem, getattr(args, "config", None)) from None


def given(args: argparse.Namespace, names: Iterable[str]) -> list[str]:
    """The flags among `names` (dotted fields) that the command line set."""
    return [SHORT_NAMES.get(name, f"--{name}") for name in names if hasattr(args, name)]


def read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise MmsentError("configuration file not found", path) from None
    except yaml.YAMLError as error:
        raise MmsentError(f"not valid YAML: {error}", path) from None
    if not isinstance(loaded, dict):
        raise MmsentError("a configuration file must be a mapping of sections", path)
    return loaded


def merge(base: dict, update: dict, source: str, prefix: str = "") -> None:
    for key, value in update.items():
        if key not in base:
            raise MmsentError(f"unknown option {prefix + key!r}", source)
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise MmsentError(f"{prefix + key!r} must be a section (a mapping)", source)
            merge(base[key], value, source, prefix + key + ".")
        else:
            base[key] = value


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data[part]
    data[leaf] = str(value) if isinstance(value, Path) else value
