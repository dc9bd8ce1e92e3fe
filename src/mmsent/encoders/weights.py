"""Where an encoder's weights come from, and what identifies them.

Weights come from an installed package, a local folder, or a Hugging Face hub
id (only for users whose machine can reach the hub or has it cached). Each is
identified for the feature store by where it came from plus a hash of the
files themselves, so swapping the weights behind an unchanged name still
changes the features' key (large files' digests are remembered while the file
is untouched: `mmsent.encoders.digests`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from mmsent.encoders.digests import file_sha256
from mmsent.errors import BadInput, MmsentError

log = logging.getLogger(__name__)

_IGNORED_FILES = {"README.md", ".gitattributes", ".gitignore"}


def folder_sha256(folder: Path) -> str:
    """One hash over every file of a model folder (names and contents), READMEs aside."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if path.name in _IGNORED_FILES or relative.startswith("."):
            continue
        digest.update(f"{relative}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _looks_like_path(source: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else can only be meant as a folder.
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load reports and warnings; our own errors say what went wrong."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained(loader: Any, source: str, *, family: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained(source)` for a local folder or a hub id, with errors a user can act on.

    `family` is the registry prefix (e.g. "hf-text"), used to show how to name a folder instead.
    """
    folder = Path(source).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise BadInput("a model is named by its folder (with config.json), not a file", folder)
        try:
            with _quiet_transformers():
                return loader.from_pretrained(str(folder.resolve()), **kwargs)
        except (OSError, ValueError, KeyError) as error:
            raise BadInput(f"could not load a model from this folder: {_first_line(error)}", folder) from None
    if _looks_like_path(source):
        raise BadInput("no such model folder", folder)
    try:
        with _quiet_transformers():
            return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise MmsentError(
            f"could not load the model {source!r} from the Hugging Face hub ({_first_line(error)}). "
            "If this machine cannot reach the hub, download the model where it can "
            f"(e.g. `hf download {source} --local-dir DIR`), copy DIR here and name the folder "
            f"instead: `{family}:DIR`."
        ) from None


def resolved_folder(source: str) -> Path | None:
    """The folder holding a model's files: the local folder, or a hub id's cached snapshot."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as error:  # noqa: BLE001 - any failure just means "no local copy"
        log.info("no local snapshot of %s (%s)", source, error)
        return None


def weights_identity(source: str) -> dict[str, Any]:
    """Identity of Hugging Face weights: the name given, and a hash of the files behind it."""
    folder = resolved_folder(source)
    identity: dict[str, Any] = {"source": source}
    if folder is not None:
        identity["folder"] = str(folder)
        identity["sha256"] = folder_sha256(folder)
    return identity


def read_model_json(source: str, filename: str) -> dict[str, Any] | None:
    """A JSON file beside the model (e.g. preprocessor_config.json), or None when there is none."""
    folder = resolved_folder(source)
    path = folder / filename if folder is not None else None
    if path is None or not path.is_file():
        if Path(source).expanduser().is_dir():
            return None
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, filename))
        except Exception as error:  # noqa: BLE001 - a missing file means "use the defaults"
            log.info("no %s for %s (%s); using default preprocessing", filename, source, error)
            return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInput(f"unreadable {filename}: {error}", path) from None
