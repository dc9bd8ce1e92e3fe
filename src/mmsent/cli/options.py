"""Every field of the run configuration as a command-line flag, plus a YAML file.

`--section.field VALUE` sets any option (dashes or underscores), `--config FILE`
reads a YAML file with the same nesting, and a few short aliases cover the
options people type most. Precedence: defaults < YAML file < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from mmsent.config import RunConfig, from_plain, to_plain
from mmsent.errors import MmsentError

ALIASES = {
    "--data": "data.root",
    "--out": "out",
    "--name": "name",
    "--skip-bad": "data.skip_bad",
    "--heads": "train.heads",
    "--seed": "train.seed",
    "--image-encoder": "encoders.image",
    "--text-encoder": "encoders.text",
    "--devices": "train.devices",
    "--cache": "encoders.cache",
}


def fields_of(cls, prefix: str = "") -> typing.Iterator[tuple[str, Any, Any]]:
    """(dotted name, type, default) of every leaf field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, name = hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(hint):
            yield from fields_of(hint, name + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            yield name, hint, default


def add_flag(parser: argparse.ArgumentParser, flags: list[str], dest: str, hint, default) -> None:
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": f"(default: {default})"}
    origin = typing.get_origin(hint)
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is list:
        kwargs.update(nargs="+", type=typing.get_args(hint)[0])
    elif origin is Literal:
        kwargs.update(choices=list(typing.get_args(hint)))
    else:
        kwargs["type"] = hint
    parser.add_argument(*flags, **kwargs)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="YAML file of options (same nesting as config.yaml of a run)"
    )
    group = parser.add_argument_group("options (any field of the configuration)")
    reverse = {dest: flag for flag, dest in ALIASES.items()}
    for name, hint, default in fields_of(RunConfig):
        flags = sorted({f"--{name}", f"--{name.replace('_', '-')}"})
        if name in reverse:
            flags.insert(0, reverse[name])
        add_flag(group, flags, name, hint, default)


def resolve_config(args: argparse.Namespace, defaults: RunConfig | None = None) -> RunConfig:
    """Defaults, then the YAML file, then the flags given on the command line."""
    data: dict[str, Any] = to_plain(defaults or RunConfig())
    if getattr(args, "config", None):
        merge(data, read_yaml(args.config), str(args.config))
    known = {name for name, _, _ in fields_of(RunConfig)}
    for name in known:
        if hasattr(args, name):
            set_dotted(data, name, getattr(args, name))
    return from_plain(RunConfig, data)


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
