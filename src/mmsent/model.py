"""The one model object: what a run folder loads back, and what every answering path uses.

    model = load_run("runs/my-run")          # a Predictor
    probs = model.predict_proba(table)       # [N, 3], rows of a FeatureTable, LABELS order
    model.member_proba(table)                # each member's own answer, by name
    model.explain(table)                     # per pair: the answer without each side; the head's readout

A trained run answers with a `Predictor`: one or more members, each the mean of
one or more fitted models (a head per seed, or a linear probe), combined by
their mean or a stacked logistic regression, then calibrated. A single chosen
model is a predictor of one member, so `mmsent predict`, `mmsent evaluate`, the
Python API and the service all go through the same `predict_proba`.

Features come in as a `FeatureTable`: the feature store's rows for a list, or
the rows a raw upload was just encoded to (`FeatureTable.from_arrays`).
Nothing here imports Lightning, and nothing is unpickled: model files are
safetensors and JSON (`mmsent.weightfiles`), checked before they are read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmsent import LABELS
from mmsent.errors import MmsentError
from mmsent.evaluate.calibration import EPS, Calibration
from mmsent.features.table import FeatureTable
from mmsent.files import sealed, unsealed, write_text
from mmsent.heads import create_head
from mmsent.heads.base import Head
from mmsent.weightfiles import (
    load_legacy_checkpoint,
    load_settings,
    load_tensors,
    record,
    save_model,
    settings_path,
    verify,
)

log = logging.getLogger(__name__)
MODEL_FILE = "model.json"
LEGACY_ENSEMBLE_FILE = "ensemble.json"  # written by mmsent 0.1's `ensemble` command
PROBE = "linear_probe"  # the candidate name of the logistic-regression baseline
EVAL_BATCH = 512
FORMAT = 2  # 2: safetensors + JSON, every file listed with its SHA-256; 1: torch.save


class Fitted:
    """One trained model (a head, or the linear probe): probabilities for rows of a table."""

    lexicon: bool = False  # reads the VADER scores appended to the text vector

    def predict_proba(self, table: FeatureTable, rows: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def explain(self, table: FeatureTable, rows: np.ndarray) -> list[dict[str, Any]]:
        return [{} for _ in rows]

    def save(self, path: Path) -> Path:
        raise NotImplementedError


def all_rows(table: FeatureTable, rows: np.ndarray | None) -> np.ndarray:
    return np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)


# Small heads step in a few milliseconds: a second thread only adds synchronisation, and on a
# shared machine it made a step 10x slower (measured: 6 ms with one thread, 86 ms with two).
HEAD_THREADS = 1


@contextlib.contextmanager
def torch_threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class HeadModel(Fitted):
    head: Head
    hparams: dict[str, Any]  # how the checkpoint rebuilds it: head name, dims, settings, label map, encoders
    lexicon: bool = False

    @property
    def encoders(self) -> dict[str, Any]:
        return self.hparams.get("encoders") or {}

    @torch.inference_mode()
    def logits(self, table: FeatureTable, rows: np.ndarray | None = None) -> torch.Tensor:
        self.head.eval()
        rows = torch.as_tensor(all_rows(table, rows), dtype=torch.long)
        parts = [
            self.head(*table.features(rows[i : i + EVAL_BATCH], self.head.needs_tokens, self.lexicon))
            for i in range(0, len(rows), EVAL_BATCH)
        ]
        return torch.cat(parts) if parts else torch.empty(0, len(LABELS))

    def predict_proba(self, table: FeatureTable, rows: np.ndarray | None = None) -> np.ndarray:
        with torch_threads(HEAD_THREADS):
            return torch.softmax(self.logits(table, rows), dim=1).double().numpy()

    @torch.inference_mode()
    def explain(self, table: FeatureTable, rows: np.ndarray) -> list[dict[str, Any]]:
        self.head.eval()
        out = []
        for row in all_rows(table, rows):
            readout = self.head.explain(
                *table.features(np.array([row]), self.head.needs_tokens, self.lexicon)
            )
            out.append({key: one(value) for key, value in readout.items()})
        return out

    def save(self, path: Path) -> Path:
        """The head's weights as safetensors at `path`, its settings (`hparams`) as JSON beside them."""
        tensors = dict(self.head.state_dict())
        save_model(path, tensors, {"format": FORMAT, "kind": "head", "hparams": jsonable(self.hparams)})
        return path

    @classmethod
    def load(cls, path: Path, lexicon: bool | None = None) -> HeadModel:
        """A head saved by `save`; a `.ckpt` of an older mmsent is read as weights only."""
        path = Path(path)
        if path.suffix == ".ckpt":
            checkpoint = load_legacy_checkpoint(path)
            try:
                hparams = dict(checkpoint["hyper_parameters"])
                state = {
                    k.removeprefix("head."): v
                    for k, v in checkpoint["state_dict"].items()
                    if k.startswith("head.")
                }
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise MmsentError(f"not a head checkpoint of mmsent ({error})", path) from None
        else:
            settings = load_settings(path)
            if settings.get("kind") != "head" or not isinstance(settings.get("hparams"), dict):
                raise MmsentError("not the settings of a head", settings_path(path))
            hparams, state = settings["hparams"], load_tensors(path)
        try:
            head = create_head(
                hparams["head"],
                hparams["image_dim"],
                hparams["text_dim"],
                num_classes=len(hparams.get("labels", LABELS)),
                **(hparams.get("head_hparams") or {}),
            )
            head.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, MmsentError) as error:
            raise MmsentError(f"the weights do not fit the head they name ({error})", path) from None
        head.eval()
        uses_lexicon = bool((hparams.get("encoders") or {}).get("lexicon")) if lexicon is None else lexicon
        return cls(head, hparams, uses_lexicon)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (tuples become lists): what a settings file holds."""
    return json.loads(json.dumps(value))


def one(value: Any) -> Any:
    """A per-pair readout of a batch of one, as a plain scalar."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


PROBE_ARRAYS = ("mean", "scale", "coef", "intercept")


@dataclass
class ProbeModel(Fitted):
    """Multinomial logistic regression on both pooled vectors, standardised (the linear probe)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [3, D]
    intercept: np.ndarray  # [3]
    C: float = 1.0
    encoders: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, table: FeatureTable, rows: np.ndarray | None = None) -> np.ndarray:
        rows = all_rows(table, rows)
        x = (probe_inputs(table, rows) - self.mean) / self.scale
        scores = x @ self.coef.T + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        out = np.exp(scores)
        return out / out.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> Path:
        """The probe's arrays as safetensors at `path`, C and its encoders as JSON beside them."""
        arrays = {
            k: np.asarray(getattr(self, k), dtype=np.float64) for k in ("mean", "scale", "coef", "intercept")
        }
        settings = {
            "format": FORMAT,
            "kind": "probe",
            "C": float(self.C),
            "encoders": jsonable(self.encoders),
        }
        save_model(path, arrays, settings)
        return path

    @classmethod
    def load(cls, path: Path) -> ProbeModel:
        """A probe saved by `save`; the `.npz` of an older mmsent is read without pickle."""
        path = Path(path)
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in PROBE_ARRAYS}
                    C, encoders = float(data["C"]), json.loads(str(data["encoders"]))
            else:
                settings = load_settings(path)
                if settings.get("kind") != "probe":
                    raise MmsentError("not the settings of a linear probe", settings_path(path))
                arrays, C, encoders = (
                    load_tensors(path, as_numpy=True),
                    float(settings["C"]),
                    settings["encoders"],
                )
            probe = cls(
                **{
                    k: np.asarray(arrays[k], dtype=np.float64) for k in ("mean", "scale", "coef", "intercept")
                },
                C=C,
                encoders=dict(encoders),
            )
        except FileNotFoundError:
            raise MmsentError("probe file missing", path) from None
        except MmsentError:
            raise
        except Exception as error:  # a damaged archive fails in many ways (BadZipFile, EOFError, ...)
            raise MmsentError(f"not a readable probe file ({type(error).__name__}: {error})", path) from None
        probe.check_shapes(path)
        return probe

    def check_shapes(self, path: Path) -> None:
        classes, width = self.coef.shape if self.coef.ndim == 2 else (0, 0)
        if not (
            classes and self.intercept.shape == (classes,) and self.mean.shape == self.scale.shape == (width,)
        ):
            raise MmsentError("the probe's arrays do not fit together", path)


def probe_inputs(table: FeatureTable, rows: np.ndarray) -> np.ndarray:
    """What the probe reads: the image and text pooled vectors side by side."""
    index = torch.as_tensor(rows, dtype=torch.long)
    return torch.cat([table.image[index], table.text[index]], dim=1).double().numpy()


# -------------------------------------------------------------------------- combining


def stack_inputs(member_probs: list[np.ndarray]) -> np.ndarray:
    return np.hstack([np.log(np.clip(p, EPS, 1.0)) for p in member_probs])


def apply_stacker(stacker: dict, member_probs: list[np.ndarray]) -> np.ndarray:
    scores = stack_inputs(member_probs) @ np.asarray(stacker["coef"]).T + np.asarray(stacker["intercept"])
    scores -= scores.max(axis=1, keepdims=True)
    out = np.exp(scores)
    return out / out.sum(axis=1, keepdims=True)


def combine(member_probs: list[np.ndarray], how: str, stacker: dict | None = None) -> np.ndarray:
    if how == "mean":
        return np.mean(member_probs, axis=0)
    if stacker is None:
        raise ValueError("a stacked ensemble needs its stacker")
    return apply_stacker(stacker, member_probs)


@dataclass
class Member:
    """One recipe (or the probe), fitted under one or more seeds: its answer is their mean."""

    name: str
    recipe: dict[str, Any]
    models: list[Fitted]

    def predict_proba(self, table: FeatureTable, rows: np.ndarray | None = None) -> np.ndarray:
        return np.mean([m.predict_proba(table, rows) for m in self.models], axis=0)


@dataclass
class Predictor:
    """A run's model: members combined (mean or stacked), then calibrated.

    `others` are models trained beside the answer (the main job's other candidates):
    their own answers are shown next to the ensemble's, never mixed into it."""

    members: list[Member]
    how: str = "mean"
    stacker: dict | None = None
    calibration: Calibration = field(default_factory=Calibration)
    others: list[Member] = field(default_factory=list)
    name: str = ""
    labels: tuple[str, ...] = LABELS
    # The neutral stand-in for a modality when measuring what it contributed: the mean pooled
    # vector of each side over the training pairs ({} for models saved without it).
    reference: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name or " + ".join(m.name for m in self.members)

    def predict_proba(self, table: FeatureTable, rows: np.ndarray | None = None) -> np.ndarray:
        if len(all_rows(table, rows)) == 0:
            return np.zeros((0, len(self.labels)))
        return self.combined({m.name: m.predict_proba(table, rows) for m in self.members})

    def combined(self, member_probs: dict[str, np.ndarray]) -> np.ndarray:
        """The answer from the members' own probabilities (as `member_proba` gives them)."""
        per_member = [member_probs[m.name] for m in self.members]
        return self.calibration.apply(combine(per_member, self.how, self.stacker))

    def member_proba(self, table: FeatureTable, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each member's and each other candidate's own probabilities."""
        return {m.name: m.predict_proba(table, rows) for m in [*self.members, *self.others]}

    def explain(self, table: FeatureTable, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Per pair: what this model answers without each modality, for any kind of model.

        `without_image` holds the class probabilities (in `labels` order) when the image's features
        are replaced by their mean over the training pairs, so the answer rests on the text alone
        (`without_text` likewise); absent for a model saved without that mean. Beside them, the
        first member's own readout (gate values, input shares), under `readout`."""
        rows = all_rows(table, rows)
        out: list[dict[str, Any]] = [{} for _ in rows]
        if self.reference and len(rows):
            for side in ("image", "text"):
                ablated = self.predict_proba(table.without(side, np.asarray(self.reference[side])), rows)
                for entry, probs in zip(out, ablated, strict=True):
                    entry[f"without_{side}"] = [float(p) for p in probs]
        for entry, readout in zip(out, self.readout(table, rows), strict=True):
            if readout is not None:
                entry["readout"] = readout
        return out

    def readout(self, table: FeatureTable, rows: np.ndarray | None = None) -> list[dict[str, Any] | None]:
        """Per pair: the first member's own figures that has any (gate values, input shares), named."""
        rows = all_rows(table, rows)
        for member in self.members:
            readouts = member.models[0].explain(table, rows)
            if any(readouts):
                return [{"model": member.name, **readout} for readout in readouts]
        return [None for _ in rows]

    def answering_with(self, name: str) -> Predictor:
        """The same models, answering with the one called `name` (a member or another candidate)."""
        if name == self.name:
            return self
        every = {m.name: m for m in [*self.members, *self.others]}
        if name not in every:
            raise MmsentError(f"this run has no model {name!r}; it has {', '.join([self.name, *every])}")
        others = [m for n, m in every.items() if n != name]
        return Predictor([every[name]], others=others, name=name, reference=self.reference)

    @property
    def encoders(self) -> dict[str, Any]:
        model = self.members[0].models[0]
        found = model.encoders if hasattr(model, "encoders") else {}
        return {side: found[side] for side in ("image", "text") if side in found}

    # ------------------------------------------------------------------------ files
    def save(self, folder: Path) -> Path:
        """model.json and every model file, each listed there with its size and SHA-256; model.json
        carries the digest of its own content, so an edit or damage to it is caught too."""
        files: dict[str, dict] = {}
        spec = {
            "format": FORMAT,
            "name": self.name,
            "combine": self.how,
            "stacker": self.stacker,
            "calibration": self.calibration.to_dict(),
            "members": [_save_member(m, folder, files) for m in self.members],
            "others": [_save_member(m, folder, files) for m in self.others],
            "reference": self.reference,
            "files": files,
        }
        return write_text(folder / MODEL_FILE, json.dumps(sealed(spec, "digest"), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Predictor:
        path = folder / MODEL_FILE
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise MmsentError(f"{MODEL_FILE} is not readable JSON ({error})", path) from None
        try:
            if not isinstance(spec, dict):
                raise TypeError("not a JSON object")
            checked = spec.get("format", 1) >= 2
            if checked and unsealed(spec, "digest") is None:
                raise MmsentError(
                    f"{MODEL_FILE} differs from what mmsent wrote (its digest does not match its content): "
                    "damaged or edited; restore it, or train again",
                    path,
                )
            if not checked:
                log.warning("%s: written by an older mmsent, its files carry no checksums", path)
            files = spec.get("files") if checked else None
            members = [_load_member(m, folder, files) for m in spec["members"]]
            others = [_load_member(m, folder, files) for m in spec.get("others", [])]
            model = cls(
                members,
                spec["combine"],
                spec.get("stacker"),
                Calibration(**spec["calibration"]),
                others,
                spec.get("name", ""),
                reference=spec.get("reference", {}),
            )
            model.check(path)
            return model
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
            raise MmsentError(f"{MODEL_FILE} is malformed ({type(error).__name__}: {error})", path) from None

    def check(self, path: Path) -> None:
        """What a loaded model must be for its answers to mean anything."""
        if (
            not self.members
            or self.how not in ("mean", "stack")
            or (self.how == "stack" and not self.stacker)
        ):
            raise MmsentError(
                f"{MODEL_FILE} is malformed (no members, or an unknown way to combine them)", path
            )
        for side, vector in self.reference.items():
            if side not in ("image", "text") or not all(isinstance(v, (int, float)) for v in vector):
                raise MmsentError(f"{MODEL_FILE} is malformed (reference {side!r})", path)


def _save_member(member: Member, folder: Path, files: dict[str, dict]) -> dict[str, Any]:
    weights = []
    for i, model in enumerate(member.models):
        stem = slug(member.name) + (f"-s{i}" if len(member.models) > 1 else "")
        name = "probe.safetensors" if isinstance(model, ProbeModel) else "head.safetensors"
        path = model.save(folder / "models" / stem / name)
        for written in (path, settings_path(path)):
            files[written.relative_to(folder).as_posix()] = record(written)
        weights.append(path.relative_to(folder).as_posix())
    return {"name": member.name, "recipe": member.recipe, "files": weights}


def _load_member(spec: dict[str, Any], folder: Path, files: dict[str, dict] | None) -> Member:
    """A member's models; with `files` (model.json's list), each file checked before it is read."""
    lexicon = bool(spec["recipe"].get("lexicon", False))
    models: list[Fitted] = []
    for relative in spec["files"]:
        path = inside(folder, relative)
        if files is not None:
            for part in (path, settings_path(path)):
                verify(part, files.get(part.relative_to(folder).as_posix()), folder / MODEL_FILE)
        probe = path.suffix == ".npz" or path.name.startswith("probe.")
        models.append(ProbeModel.load(path) if probe else HeadModel.load(path, lexicon))
    member = Member(spec["name"], spec["recipe"], models)
    check_kind(member, folder / MODEL_FILE)
    return member


def inside(folder: Path, relative: Any) -> Path:
    """`folder / relative`, refusing a name that leads out of the run folder."""
    if not isinstance(relative, str) or Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise MmsentError(f"{MODEL_FILE} names a file outside the run folder: {relative!r}", folder)
    return folder / relative


def check_kind(member: Member, where: Path) -> None:
    """A member's files must hold the model its recipe names (a swapped file is caught here)."""
    wanted = member.recipe.get("head")
    for model in member.models:
        kind = PROBE if isinstance(model, ProbeModel) else model.hparams.get("head")
        if wanted and kind != wanted:
            raise MmsentError(
                f"model {member.name!r} should be a {wanted!r} but its file holds a {kind!r}", where
            )


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "member"


# -------------------------------------------------------------------------- run folders


def load_run(path: str | Path, expect_encoders: dict[str, dict] | None = None) -> Predictor:
    """The model a run folder answers with. `expect_encoders`: refuse a model trained on other
    encoders' features (identities as in run.json)."""
    folder = Path(path)
    if (folder / MODEL_FILE).is_file():
        model = Predictor.load(folder)
    elif (folder / LEGACY_ENSEMBLE_FILE).is_file():
        model = _load_legacy_ensemble(folder)
    elif (folder / "run.json").is_file():
        model = _load_legacy_heads(folder)
    else:
        raise MmsentError(f"not a finished mmsent run folder (no {MODEL_FILE})", folder)
    if expect_encoders is not None:
        check_encoders(model, expect_encoders, folder)
    return model


def check_encoders(model: Predictor, expected: dict[str, dict], where: Path) -> None:
    for member in [*model.members, *model.others]:
        for fitted in member.models:
            trained_on = getattr(fitted, "encoders", None) or {}
            for side in ("image", "text"):
                if side in expected and side in trained_on and trained_on[side] != expected[side]:
                    raise MmsentError(
                        f"model {member.name!r} was trained on {side} features of "
                        f"{trained_on[side].get('encoder', '?')!r}, not of "
                        f"{expected[side].get('encoder', '?')!r} with these weights/preprocessing",
                        where,
                    )


def _load_legacy_ensemble(folder: Path) -> Predictor:
    path = folder / LEGACY_ENSEMBLE_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        members = [
            Member(
                m["recipe"].get("name") or m["recipe"]["head"],
                m["recipe"],
                [
                    HeadModel.load(folder / "heads" / h / "model.ckpt", bool(m["recipe"].get("lexicon")))
                    for h in m["heads"]
                ],
            )
            for m in spec["members"]
        ]
        return Predictor(members, spec["combine"], spec.get("stacker"), Calibration(**spec["calibration"]))
    except (ValueError, KeyError, TypeError) as error:
        raise MmsentError(f"{LEGACY_ENSEMBLE_FILE} is malformed ({error})", path) from None


def _load_legacy_heads(folder: Path) -> Predictor:
    meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    heads = {
        h: Member(h, {"head": h}, [HeadModel.load(folder / "heads" / h / "model.ckpt")])
        for h in meta["heads"]
    }
    best = meta["best_head"]
    return Predictor([heads[best]], others=[m for h, m in heads.items() if h != best], name=best)
