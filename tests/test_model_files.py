"""Model files are data, never code, and are checked before they are believed (issue 19).

A run folder or a fit cache handed over by someone else: a pickle planted in it never runs, a
damaged or swapped file is named (exit 3) or, in the fit cache, made again; never a silent wrong
answer. The last test mutates every file of a run at random (Hypothesis).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_config
from mmsent import pipeline
from mmsent.cli.main import main
from mmsent.errors import MmsentError
from mmsent.features.table import FeatureTable
from mmsent.files import sealed, unsealed
from mmsent.model import MODEL_FILE, ProbeModel, load_run
from mmsent.train.fit import fits_folder
from mmsent.weightfiles import record


class Payload:
    """What a malicious pickle holds: unpickling it would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant_pickle(path: Path, marker: Path) -> None:
    torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, path)


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def spec_of(run: Path) -> dict:
    return json.loads((run / MODEL_FILE).read_text())


def write_spec(run: Path, spec: dict, *, sign: bool = True) -> None:
    if sign:
        spec = sealed({k: v for k, v in spec.items() if k != "digest"}, "digest")
    (run / MODEL_FILE).write_text(json.dumps(spec, indent=2))


def model_files(run: Path) -> dict[str, Path]:
    """Each model's weights file, by model name."""
    spec = spec_of(run)
    return {m["name"]: run / m["files"][0] for m in [*spec["members"], *spec["others"]]}


def a_table(model) -> FeatureTable:
    """Eight random pairs in the run's feature widths."""
    rng = np.random.default_rng(0)
    widths = {"image": None, "text": None}
    for member in [*model.members, *model.others]:
        fitted = member.models[0]
        if isinstance(fitted, ProbeModel):
            continue
        widths = {"image": fitted.hparams["image_dim"], "text": fitted.hparams["text_dim"]}
    assert widths["image"]
    sides = {
        side: {"pooled": rng.normal(size=(8, width)).astype(np.float32), "identity": {}}
        for side, width in widths.items()
    }
    return FeatureTable.from_arrays([f"t{i}" for i in range(8)], sides["image"], sides["text"])


def one_pair(run: Path, tmp_path: Path, picture) -> list[str]:
    image = tmp_path / "pair.jpg"
    picture.save(image)
    return ["predict", str(run), "--image", str(image), "--text", "a happy day", "--quiet"]


@pytest.fixture
def picture():
    from PIL import Image

    return Image.new("RGB", (48, 40), (220, 60, 40))


# ---------------------------------------------------------------------------- the run folder


def test_a_run_is_written_as_safetensors_and_json_each_listed_with_its_digest(run_copy):
    spec = spec_of(run_copy)
    assert spec["format"] == 2 and unsealed(spec, "digest") is not None
    on_disk = {p.relative_to(run_copy).as_posix() for p in (run_copy / "models").rglob("*") if p.is_file()}
    assert on_disk == set(spec["files"])
    assert {Path(f).suffix for f in on_disk} == {".safetensors", ".json"}
    for name, expected in spec["files"].items():
        assert record(run_copy / name) == expected
    assert not list(run_copy.rglob("*.ckpt")) and not list(run_copy.rglob("*.npz"))


def test_a_pickle_planted_in_a_run_never_runs_and_the_error_names_it(run_copy, tmp_path, capsys, picture):
    marker = tmp_path / "pwned"
    weights = model_files(run_copy)["concat"]
    plant_pickle(weights, marker)
    assert main(one_pair(run_copy, tmp_path, picture)) == 3
    err = capsys.readouterr().err
    assert not marker.exists()
    assert str(weights) in err and "differs from the file recorded" in err

    # The same payload as an old-format run (model.json format 1 naming a model.ckpt): refused too.
    spec = spec_of(run_copy)
    for member in [*spec["members"], *spec["others"]]:
        if member["name"] == "concat":
            member["files"] = ["models/concat/model.ckpt"]
    spec = {k: v for k, v in spec.items() if k not in ("files", "digest")} | {"format": 1}
    plant_pickle(run_copy / "models" / "concat" / "model.ckpt", marker)
    write_spec(run_copy, spec, sign=False)
    assert main(one_pair(run_copy, tmp_path, picture)) == 3
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "model.ckpt" in err and "never unpickles" in err and "Train again" in err
    assert "Traceback" not in err


def test_a_damaged_file_of_the_same_size_is_named(run_copy):
    weights = model_files(run_copy)["text_only"]
    data = bytearray(weights.read_bytes())
    data[-64:] = bytes(255 - b for b in data[-64:])  # 64 bytes inside the tensors, same size
    weights.write_bytes(bytes(data))
    with pytest.raises(MmsentError, match="differs from the file recorded") as caught:
        load_run(run_copy)
    assert caught.value.path == weights


def test_a_swapped_model_file_is_caught_by_its_digest_and_by_its_kind(run_copy):
    files = model_files(run_copy)
    for suffix in (".safetensors", ".json"):
        shutil.copy(files["concat"].with_suffix(suffix), files["text_only"].with_suffix(suffix))
    with pytest.raises(MmsentError, match="differs from the file recorded"):
        load_run(run_copy)
    # Even with the digests rewritten to match (a hand-edited model.json), the kinds disagree.
    spec = spec_of(run_copy)
    for suffix in (".safetensors", ".json"):
        path = files["text_only"].with_suffix(suffix)
        spec["files"][path.relative_to(run_copy).as_posix()] = record(path)
    write_spec(run_copy, spec)
    with pytest.raises(MmsentError, match="'text_only' but its file holds a 'concat'"):
        load_run(run_copy)


def test_an_edited_model_json_is_caught_by_its_own_digest(run_copy):
    spec = spec_of(run_copy)
    spec["calibration"]["temperature"] = 7.5
    write_spec(run_copy, spec, sign=False)
    with pytest.raises(MmsentError, match="its digest does not match its content"):
        load_run(run_copy)


def test_a_file_named_outside_the_run_folder_is_refused(run_copy):
    spec = spec_of(run_copy)
    spec["members"][0]["files"] = ["../../etc/passwd"]
    write_spec(run_copy, spec)
    with pytest.raises(MmsentError, match="outside the run folder"):
        load_run(run_copy)


def test_a_truncated_probe_is_a_named_error_in_either_format(tmp_path):
    probe = ProbeModel(np.zeros(4), np.ones(4), np.ones((3, 4)), np.zeros(3), C=0.5)
    path = probe.save(tmp_path / "probe.safetensors")
    assert ProbeModel.load(path).C == 0.5
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(MmsentError, match="not a readable safetensors file") as caught:
        ProbeModel.load(path)
    assert caught.value.path == path
    legacy = tmp_path / "probe.npz"
    np.savez(legacy, mean=np.zeros(4), scale=np.ones(4), coef=np.ones((3, 4)), intercept=np.zeros(3), C=1.0,
             encoders=np.array("{}"))  # fmt: skip
    assert ProbeModel.load(legacy).coef.shape == (3, 4)  # a run of an older mmsent still loads
    legacy.write_bytes(legacy.read_bytes()[:-40])
    with pytest.raises(MmsentError, match="not a readable probe file") as caught:
        ProbeModel.load(legacy)
    assert caught.value.path == legacy


# ---------------------------------------------------------------------------- the fit cache


def test_the_fit_cache_never_runs_a_planted_pickle_and_remakes_damaged_entries(
    tiny_lab, tiny_encoders, tmp_path
):
    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path, max_epochs=3, patience=0)
    run, _ = pipeline.run_all(cfg, progress=False)
    answers = (run.path / "predictions" / "test_without_label.probabilities.csv").read_text()
    fits = fits_folder(cfg)
    entries = [p for p in fits.iterdir() if p.is_dir()]
    assert entries and all((p / "fit.json").is_file() for p in entries)

    marker = tmp_path / "pwned"
    for i, entry in enumerate(entries):
        weights = next(entry.glob("*.safetensors"))
        if i % 2:
            plant_pickle(weights, marker)  # a pickle where the weights should be
        else:
            data = bytearray(weights.read_bytes())
            data[-64:] = bytes(255 - b for b in data[-64:])  # the same size, damaged tensors
            weights.write_bytes(bytes(data))
        plant_pickle(entry / "model.ckpt", marker)  # where an older mmsent kept its fits

    cfg.name = "again"
    again, _ = pipeline.run_all(cfg, progress=False)
    assert not marker.exists()
    # Every damaged entry was made again: the same answers as before, and the entries check out.
    assert (again.path / "predictions" / "test_without_label.probabilities.csv").read_text() == answers
    for entry in entries:
        info = json.loads((entry / "fit.json").read_text())
        for name, expected in info["files"].items():
            assert record(entry / name) == expected


# ---------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

mutations = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("random"), st.binary(max_size=200), st.just(0)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=20), st.just(0)),
)


def mutate(data: bytes, mutation) -> bytes:
    kind, where, value = mutation
    if kind == "flip":
        at = min(int(where * len(data)), len(data) - 1)
        return data[:at] + bytes([data[at] ^ value]) + data[at + 1 :]
    if kind == "truncate":
        return data[: int(where * len(data))]
    if kind == "random":
        return where
    return data + where


@FUZZ
@given(which=st.integers(0, 10_000), mutation=mutations)
def test_random_damage_to_any_file_of_a_run_is_a_named_error_or_the_same_answer(run_copy, which, mutation):
    reference = load_run(run_copy)
    table = a_table(reference)
    expected = reference.predict_proba(table)
    files = sorted(p for p in run_copy.joinpath("models").rglob("*") if p.is_file())
    target = [run_copy / MODEL_FILE, *files][which % (len(files) + 1)]
    original = target.read_bytes()
    try:
        target.write_bytes(mutate(original, mutation))
        try:
            answer = load_run(run_copy).predict_proba(table)
        except MmsentError as error:
            assert error.path is not None  # every refusal names the file at fault
        else:
            assert np.allclose(answer, expected)  # an unchanged meaning (say, JSON whitespace)
    finally:
        target.write_bytes(original)
