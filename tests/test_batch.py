"""`mmsent predict RUN --input FILE --output FILE`: formats, bad rows, resuming, the Ray engine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmsent.batch import Columns, InputFile, predict_input
from mmsent.batch.writer import Parts, errors_path
from mmsent.cli.main import main
from mmsent.errors import MmsentError

PROBABILITIES = ["p_positive", "p_neutral", "p_negative"]


def lab_pairs(lab: Path, count: int) -> list[dict]:
    """The first `count` pairs of the tiny lab: id, image path (relative to the lab), text."""
    guids = sorted((p.stem for p in (lab / "data").glob("*.jpg")), key=int)[:count]
    return [
        {"id": g, "image": f"data/{g}.jpg", "text": (lab / "data" / f"{g}.txt").read_text(encoding="utf-8")}
        for g in guids
    ]


def write_input(folder: Path, lab: Path, rows: list[dict], kind: str) -> Path:
    """`rows` as an input file of `kind` in `folder`, whose data/ is the lab's (relative paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        (folder / "data").symlink_to(lab / "data")
    path = folder / f"pairs.{kind}"
    if kind == "csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, ["id", "image", "text"])
            writer.writeheader()
            writer.writerows(rows)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:  # Parquet with the images' bytes in the image column
        images = [(folder / r["image"]).read_bytes() if r["image"] else None for r in rows]
        table = pa.table(
            {
                "id": [r["id"] for r in rows],
                "image": pa.array(images, type=pa.binary()),
                "text": [r["text"] for r in rows],
            }
        )
        pq.write_table(table, path)
    return path


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            {k: float(v) if k.startswith("p_") else v for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def as_array(rows: list[dict]) -> np.ndarray:
    return np.array([[row[p] for p in PROBABILITIES] for row in rows])


@pytest.fixture(scope="module")
def reference(tiny_run, tiny_lab):
    """The Python API's answers for the first 10 pairs, pair by pair."""
    from mmsent.serve.classifier import Classifier

    classifier = Classifier.load(tiny_run)
    rows = lab_pairs(tiny_lab, 10)
    answers = [classifier.predict(tiny_lab / r["image"], r["text"]) for r in rows]
    return rows, answers


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_each_format_gives_the_python_apis_answers(tmp_path, tiny_run, tiny_lab, reference, kind):
    rows, answers = reference
    source = write_input(tmp_path / "in", tiny_lab, rows, kind)
    output = tmp_path / f"answers.{kind}"
    summary = predict_input(tiny_run, source, output, chunk_rows=4, batch_size=3, workers=0, progress=False)

    found = read_output(output)
    assert (summary.answered, summary.failed) == (10, 0)
    assert list(found[0]) == ["id", "label", *PROBABILITIES]
    assert [r["id"] for r in found] == [r["id"] for r in rows]  # every row, in input order
    assert [r["label"] for r in found] == [a.label for a in answers]
    expected = np.array([[a.probabilities[p[2:]] for p in PROBABILITIES] for a in answers])
    np.testing.assert_allclose(as_array(found), expected, atol=1e-6)
    assert not errors_path(output).exists() and not (tmp_path / "answers.parts").exists()


def test_bad_rows_stop_the_job_naming_the_row_or_are_listed(tmp_path, tiny_run, tiny_lab, capsys):
    rows = lab_pairs(tiny_lab, 6)
    rows[1]["image"] = "data/nowhere.jpg"
    rows[3]["text"] = "   "
    folder = tmp_path / "in"
    source = write_input(folder, tiny_lab, rows, "csv")
    (folder / "broken.jpg").write_bytes((tiny_lab / "data" / "1.jpg").read_bytes()[:40])
    with open(source, "a", encoding="utf-8") as handle:
        handle.write("broken,broken.jpg,a sunny day\n")
    output = tmp_path / "answers.csv"

    code = main(["predict", str(tiny_run), "--input", str(source), "--output", str(output), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and not output.exists()
    assert err.splitlines() == [
        f"mmsent: error: {source}: row 2: image file is missing ({folder}/data/nowhere.jpg)"
    ]

    code = main(
        [
            "predict",
            str(tiny_run),
            "--input",
            str(source),
            "--output",
            str(output),
            "--skip-bad",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    assert code == 0
    assert [r["id"] for r in read_output(output)] == [rows[i]["id"] for i in (0, 2, 4, 5)]
    with open(errors_path(output), newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    assert [(e["row"], e["id"]) for e in listed] == [
        ("2", rows[1]["id"]),
        ("4", rows[3]["id"]),
        ("7", "broken"),
    ]
    assert listed[0]["error"].startswith("image file is missing")
    assert listed[1]["error"] == "text is empty"
    assert "truncated" in listed[2]["error"] or "corrupt" in listed[2]["error"]


class Interrupted(Exception):
    pass


def test_a_resumed_job_writes_what_an_uninterrupted_one_writes(tmp_path, tiny_run, tiny_lab, monkeypatch):
    rows = lab_pairs(tiny_lab, 11)
    source = write_input(tmp_path / "in", tiny_lab, rows, "parquet")
    whole, resumed = tmp_path / "whole.csv", tmp_path / "resumed.csv"
    options = {"chunk_rows": 3, "batch_size": 2, "workers": 0, "progress": False}
    predict_input(tiny_run, source, whole, **options)

    real_write = Parts.write

    def write_two_then_stop(self, index, table):
        if len(self.finished()) == 2:
            raise Interrupted
        real_write(self, index, table)

    monkeypatch.setattr(Parts, "write", write_two_then_stop)
    with pytest.raises(Interrupted):
        predict_input(tiny_run, source, resumed, **options)
    monkeypatch.setattr(Parts, "write", real_write)
    assert not resumed.exists()
    with pytest.raises(MmsentError, match="--resume continues it"):
        predict_input(tiny_run, source, resumed, **options)

    summary = predict_input(tiny_run, source, resumed, resume=True, **options)
    assert summary.chunks_run == 2  # chunks 2 and 3 of 0..3; 0 and 1 came from their parts
    assert resumed.read_bytes() == whole.read_bytes()


def test_resume_refuses_another_jobs_parts_and_output_is_never_overwritten_unasked(
    tmp_path, tiny_run, tiny_lab
):
    source = write_input(tmp_path / "in", tiny_lab, lab_pairs(tiny_lab, 4), "csv")
    output = tmp_path / "answers.parquet"
    Parts(output, {"input": "elsewhere"}, resume=False, overwrite=False)
    with pytest.raises(MmsentError, match="another job"):
        predict_input(tiny_run, source, output, resume=True, workers=0, progress=False)
    predict_input(tiny_run, source, output, overwrite=True, workers=0, progress=False)
    with pytest.raises(MmsentError, match="exists already"):
        predict_input(tiny_run, source, output, workers=0, progress=False)


def test_decoding_workers_give_the_same_answers(tmp_path, tiny_run, tiny_lab, reference):
    rows, _ = reference
    source = write_input(tmp_path / "in", tiny_lab, rows, "csv")
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    predict_input(tiny_run, source, one, chunk_rows=4, batch_size=3, workers=0, progress=False)
    predict_input(tiny_run, source, two, chunk_rows=4, batch_size=3, workers=2, progress=False)
    assert one.read_bytes() == two.read_bytes()


def test_missing_columns_and_usage_errors(tmp_path, tiny_run, tiny_lab, capsys):
    source = write_input(tmp_path / "in", tiny_lab, lab_pairs(tiny_lab, 2), "csv")
    output = tmp_path / "out.csv"
    with pytest.raises(MmsentError, match="no column 'tweet'"):
        predict_input(tiny_run, source, output, columns=Columns(text="tweet"), workers=0, progress=False)
    run = str(tiny_run)
    assert main(["predict", run, "--input", str(source)]) == 2
    assert "--input needs --output" in capsys.readouterr().err
    assert main(["predict", run, "--skip-bad"]) == 2
    assert "only with --input" in capsys.readouterr().err
    assert main(["predict", run, "--input", str(source), "--output", str(tmp_path / "out.xlsx")]) == 3
    assert "unknown file type '.xlsx'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_ray():
    """A Ray of 2 CPUs on this machine, shared by the module's Ray tests (it takes seconds to start).

    `address="local"` starts a Ray of the tests' own even where another one runs on the machine
    (as on CI), which `ray.init` would otherwise join, refusing `num_cpus`."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_the_ray_engine_answers_as_the_local_one(tmp_path, tiny_run, tiny_lab, reference, local_ray):
    rows, _ = reference
    rows = [dict(r) for r in rows] + [{"id": "bad", "image": "data/nowhere.jpg", "text": "a day"}]
    source = write_input(tmp_path / "in", tiny_lab, rows, "csv")
    local, on_ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    predict_input(tiny_run, source, local, skip_bad=True, workers=0, progress=False)
    summary = predict_input(tiny_run, source, on_ray, engine="ray", skip_bad=True, progress=False)
    with pytest.raises(MmsentError, match="row with id 'bad': image file is missing"):
        predict_input(tiny_run, source, tmp_path / "stopped.csv", engine="ray", progress=False)

    assert (summary.answered, summary.failed) == (10, 1)
    expected = {r["id"]: r for r in read_output(local)}
    found = {r["id"]: r for r in read_output(on_ray)}
    assert found.keys() == expected.keys()
    assert [found[k]["label"] for k in expected] == [r["label"] for r in expected.values()]
    np.testing.assert_allclose(
        as_array([found[k] for k in expected]), as_array(list(expected.values())), atol=1e-6
    )
    with open(errors_path(on_ray), newline="", encoding="utf-8") as handle:
        assert [e["id"] for e in csv.DictReader(handle)] == ["bad"]


def test_extraction_on_ray_fills_the_store_as_a_local_extraction_does(
    tmp_path, tiny_lab, tiny_encoders, local_ray
):
    from conftest import tiny_config
    from mmsent.batch.ray_extract import extract_on_ray
    from mmsent.features.encode import encode, load_list

    local_cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path / "local")
    ray_cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path / "ray")
    assert extract_on_ray(ray_cfg) == 2
    parts = sorted(p.name for p in (tmp_path / "ray" / "cache").rglob("*part*of2"))
    assert len(parts) == 8  # 2 parts x 2 modalities x 2 lists, before the merge
    loads = [load_list(cfg, cfg.data.train_list) for cfg in (local_cfg, ray_cfg)]
    local, merged = (
        encode(cfg, load, progress=False) for cfg, load in zip((local_cfg, ray_cfg), loads, strict=True)
    )
    assert [p.guid for p in merged.pairs] == [p.guid for p in local.pairs]
    for side in ("image", "text"):
        np.testing.assert_allclose(getattr(merged, side).pooled, getattr(local, side).pooled, atol=1e-6)


def test_the_ray_pool_shares_each_node_between_actors_and_leaves_room_for_reading():
    from mmsent.batch.ray_engine import ACTOR_THREADS, FREE_CPUS, Pool, pool_for

    assert ACTOR_THREADS == 2  # the cases below are worked out for actors of two threads
    assert pool_for([2.0]) == Pool(actors=1, cpus=1.5, threads=2)  # one machine of 2 CPUs
    assert pool_for([1.0, 1.0]) == Pool(actors=2, cpus=0.5, threads=1)  # the two-node benchmark
    assert pool_for([0.0, 8.0, 6.0]) == Pool(actors=7, cpus=1.833, threads=2)  # head of no CPU
    for nodes in ([3.0, 7.0], [1.5, 4.0], [16.0, 2.0]):
        pool = pool_for(nodes)
        assert pool.actors == sum(max(1, int(cpus) // pool.threads) for cpus in nodes)
        for cpus in nodes:  # a node full of its actors still has FREE_CPUS unpromised
            assert max(1, int(cpus) // pool.threads) * pool.cpus <= cpus - FREE_CPUS
    with pytest.raises(MmsentError, match="no node with a whole CPU"):
        pool_for([0.0])


def test_a_ray_input_folder_counts_the_rows_of_all_its_files(tmp_path, tiny_lab):
    from mmsent.batch.ray_engine import folder_format, input_rows

    rows = lab_pairs(tiny_lab, 7)
    write_input(tmp_path / "in", tiny_lab, rows[:3], "csv").rename(tmp_path / "in" / "a.csv")
    write_input(tmp_path / "in", tiny_lab, rows[3:], "csv").rename(tmp_path / "in" / "b.csv")
    assert (folder_format(tmp_path / "in"), input_rows(InputFile(tmp_path / "in"))) == ("csv", 7)
    (tmp_path / "in" / "c.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(MmsentError, match="files of one format"):
        folder_format(tmp_path / "in")


def test_the_main_job_extracts_on_ray_when_asked(tmp_path, tiny_lab, tiny_encoders, local_ray, capsys):
    image, text = tiny_encoders
    tiny = ["--encoders.image", image, "--encoders.text", text, "--encoders.max_text_tokens", "24"]
    quick = ["--train.max_epochs", "2", "--train.heads", "concat", "--split.folds", "3", "--quiet"]
    filled = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        common = ["--data", str(tiny_lab), "--out", str(out), "--cache", str(out / "cache"), "--name", "job"]
        assert main(["run", *common, *tiny, *quick, "--train.repeats", "1", "--engine", engine]) == 0
        filled[engine] = (out / "job" / "predictions" / "test_without_label.txt").read_text()
    assert "2 parts extracted on Ray" in capsys.readouterr().out  # one task per CPU of the test's Ray
    assert filled["ray"] == filled["local"]
