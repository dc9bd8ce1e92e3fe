"""What the command line hands back: one pair's answer, --json on stdout alone, the filled-in list and
its probabilities, and each exit code (0, 1, 2, 3, 4, 130; the user guide's table and `mmsent --help`)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmsent import LABELS
from mmsent.cli import main as cli
from mmsent.cli.main import main

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
MODELS = {"linear_probe", "text_only", "image_only", "concat"}  # what the tiny run holds


def lab_pair(lab: Path) -> tuple[Path, str]:
    """The image and text of the lab's first test pair."""
    guid = (lab / "test_without_label.txt").read_text().splitlines()[1].split(",")[0]
    return lab / "data" / f"{guid}.jpg", (lab / "data" / f"{guid}.txt").read_text()


def json_out(capsys) -> tuple[dict, str]:
    """stdout parsed as one JSON object (it must hold nothing else), and stderr."""
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


# ------------------------------------------------------------------------------ one pair


def test_predict_one_pair_prints_the_label_and_the_probabilities(tiny_run, tiny_lab, capsys):
    image, text = lab_pair(tiny_lab)
    assert main(["predict", str(tiny_run), "--image", str(image), "--text", text, "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    label = lines[0].split()[0]
    assert label in LABELS
    assert all(f"{name} 0." in lines[0] for name in LABELS)  # every class's probability
    # every model the run holds answers too, one line each
    assert {line.split()[0] for line in lines[1:5]} == MODELS
    assert all(line.split()[1] in LABELS for line in lines[1:5])
    # then what the model answers without each side, beside the single-modality model of the other
    assert any(line.strip().startswith("Without the text: ") and "image-only model" in line for line in lines)
    assert any(line.strip().startswith("Without the image: ") and "text-only model" in line for line in lines)


def test_predict_one_pair_as_json_is_the_python_apis_answer(tiny_run, tiny_lab, capsys):
    from mmsent.serve.classifier import Classifier

    image, text = lab_pair(tiny_lab)
    assert main(["predict", str(tiny_run), "--image", str(image), "--text", text, "--json"]) == 0
    got, _ = json_out(capsys)
    want = Classifier.load(tiny_run).predict(image, text).to_dict()
    assert set(got) == set(want)
    assert got["label"] == want["label"] and got["model"] == want["model"]
    assert got["probabilities"] == pytest.approx(want["probabilities"])
    assert sum(got["probabilities"].values()) == pytest.approx(1.0)
    assert got["confidence"] == got["probabilities"][got["label"]]
    assert got["low_confidence"] is (got["confidence"] < 0.5)
    assert set(got["per_model"]) == MODELS and got["inputs"] == ["image", "text"]
    assert got["run"] == tiny_run.name


def test_text_file_reads_as_the_lab_reads_text(tiny_run, tiny_lab, capsys, tmp_path):
    image, text = lab_pair(tiny_lab)
    text_file = tmp_path / "tweet.txt"
    text_file.write_bytes(text.encode("gb18030"))  # not UTF-8: decoded as the lab's files are
    assert (
        main(["predict", str(tiny_run), "--image", str(image), "--text-file", str(text_file), "--json"]) == 0
    )
    from_file, _ = json_out(capsys)
    assert main(["predict", str(tiny_run), "--image", str(image), "--text", text, "--json"]) == 0
    assert json_out(capsys)[0]["probabilities"] == from_file["probabilities"]


def test_model_picks_the_model_that_answers_one_pair(tiny_run, tiny_lab, capsys):
    image, text = lab_pair(tiny_lab)
    argv = [
        "predict",
        str(tiny_run),
        "--image",
        str(image),
        "--text",
        text,
        "--model",
        "image_only",
        "--json",
    ]
    assert main(argv) == 0
    got, _ = json_out(capsys)
    assert got["model"] == "image_only" and got["label"] == got["per_model"]["image_only"]["label"]
    assert got["members"] == ["image_only"]


@pytest.mark.parametrize("side", ["text", "image"])
def test_one_side_alone_is_answered_by_that_sides_model_with_its_cv_accuracy(
    tiny_run, tiny_lab, capsys, side
):
    image, text = lab_pair(tiny_lab)
    given = ["--text", text] if side == "text" else ["--image", str(image)]
    assert main(["predict", str(tiny_run), *given, "--json"]) == 0
    got, _ = json_out(capsys)
    name = f"{side}_only"
    measured = json.loads((tiny_run / "metrics.json").read_text())["cross_validation"][name]
    assert got["model"] == name and got["inputs"] == [side] and list(got["per_model"]) == [name]
    assert got["cv_accuracy"] == pytest.approx(measured["accuracy"])
    # the same answer as that model gives for the whole pair: the other side is never read
    assert main(["predict", str(tiny_run), "--image", str(image), "--text", text, "--json"]) == 0
    pair, _ = json_out(capsys)
    for label in LABELS:
        assert got["probabilities"][label] == pytest.approx(
            pair["per_model"][name]["probabilities"][label], abs=1e-6
        )
    # and a person reads which model answered, from what, and how well it did in cross-validation
    assert main(["predict", str(tiny_run), *given, "--quiet"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert (
        f"answered by {name}, from the {side} alone; cross-validated accuracy {measured['accuracy']:.3f}"
        in first
    )


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        (lambda d: ["--image", str(d / "none.jpg"), "--text", "hi"], "none.jpg"),
        (lambda d: ["--image", str(d / "notes.jpg"), "--text", "hi"], "notes.jpg"),  # not an image
        (lambda d: ["--image", str(d / "ok.jpg"), "--text", "  "], "--text"),
        (lambda d: ["--image", str(d / "ok.jpg"), "--text-file", str(d / "none.txt")], "none.txt"),
        (lambda d: ["--image", str(d / "ok.jpg"), "--text-file", str(d / "empty.txt")], "empty.txt"),
    ],
    ids=["missing image", "not an image", "empty text", "missing text file", "empty text file"],
)
def test_a_bad_pair_is_one_line_naming_the_input_and_exit_3(tiny_run, tmp_path, capsys, inputs, named):
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "ok.jpg")
    (tmp_path / "notes.jpg").write_text("not a picture at all")
    (tmp_path / "empty.txt").write_text("")
    assert main(["predict", str(tiny_run), *inputs(tmp_path), "--json"]) == cli.EXIT_INPUT == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("mmsent: error: ") and named in captured.err
    assert len(captured.err.splitlines()) == 1


@pytest.mark.parametrize(
    "extra",
    [
        ["--image", "a.jpg", "--text", "hi", "--text-file", "t.txt"],
        ["--image", "a.jpg", "--text", "hi", "--output", "out.txt"],
        ["--text", "hi", "--list", "test.txt"],
        ["--stdin", "--image", "a.jpg"],
        ["--stdin", "--output", "out.txt"],
        ["--text", "hi", "--skip-bad"],
    ],
    ids=[
        "two texts",
        "with --output",
        "with --list",
        "stdin and a pair",
        "stdin and a list",
        "skip-bad alone",
    ],
)
def test_a_pair_a_list_and_stdin_do_not_mix_usage_error_2(tiny_run, capsys, extra):
    assert main(["predict", str(tiny_run), *extra]) == cli.EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mmsent predict") and "error:" in err


# ------------------------------------------------------------------------------ pairs on stdin


def stdin_lines(monkeypatch, *lines: str) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("".join(lines).encode("utf-8"))))


def test_stdin_answers_each_line_on_its_own_line_as_the_api_does(tiny_run, tiny_lab, capsys, monkeypatch):
    from mmsent.serve.classifier import Classifier

    image, text = lab_pair(tiny_lab)
    lines = [
        json.dumps({"image": str(image), "text": text, "id": "a"}) + "\n",
        "\n",  # blank: no pair, no answer
        json.dumps({"text": text}) + "\n",
        json.dumps({"image": str(image), "id": 7}) + "\n",
    ]
    stdin_lines(monkeypatch, *lines)
    loads = []
    real_load = Classifier.load
    monkeypatch.setattr(
        Classifier, "load", classmethod(lambda cls, *a, **k: loads.append(a) or real_load(*a, **k))
    )
    assert main(["predict", str(tiny_run), "--stdin", "--quiet"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(loads) == 1  # the model is loaded once for every line
    assert [(a["line"], a.get("id"), a["inputs"]) for a in answers] == [
        (1, "a", ["image", "text"]),
        (3, None, ["text"]),
        (4, 7, ["image"]),
    ]
    classifier = real_load(tiny_run)
    for got, want in zip(answers, [classifier.predict(image, text), classifier.predict(text=text),
                                   classifier.predict(image)], strict=True):  # fmt: skip
        assert got["model"] == want.model and got["label"] == want.label
        assert got["probabilities"] == pytest.approx(want.probabilities)


BAD_LINES = [
    ("not json\n", "the line is not JSON"),
    ('["a.jpg", "hi"]\n', "not a JSON object"),
    ('{"imgae": "a.jpg", "text": "hi"}\n', "unknown field 'imgae'"),
    ('{"id": 3}\n', "neither an image nor a text"),
    ('{"text": 5}\n', "text is not a string"),
    ('{"text": "   "}\n', "text is empty"),
    ('{"image": "nowhere.jpg", "text": "hi"}\n', "nowhere.jpg"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES, ids=[m for _, m in BAD_LINES])
def test_a_bad_stdin_line_stops_with_its_line_number_exit_3(tiny_run, capsys, monkeypatch, line, message):
    stdin_lines(monkeypatch, '{"text": "a good day"}\n', line, '{"text": "never read"}\n')
    assert main(["predict", str(tiny_run), "--stdin", "--quiet"]) == cli.EXIT_INPUT
    captured = capsys.readouterr()
    assert [json.loads(a)["line"] for a in captured.out.splitlines()] == [1]  # answered before it
    assert captured.err.startswith("mmsent: error: stdin:2: ") and message in captured.err
    assert len(captured.err.splitlines()) == 1


def test_skip_bad_answers_a_bad_stdin_line_with_its_error_and_goes_on(tiny_run, capsys, monkeypatch):
    stdin_lines(monkeypatch, *(line for line, _ in BAD_LINES), '{"text": "a good day", "id": "last"}\n')
    assert main(["predict", str(tiny_run), "--stdin", "--skip-bad"]) == 0
    captured = capsys.readouterr()
    answers = [json.loads(a) for a in captured.out.splitlines()]
    assert [a["line"] for a in answers] == list(range(1, len(BAD_LINES) + 2))
    for (_, message), got in zip(BAD_LINES, answers, strict=False):
        assert set(got) == {"line", "error"} and message in got["error"]
    assert answers[-1]["id"] == "last" and answers[-1]["label"] in LABELS
    assert f"answered 1 of {len(BAD_LINES) + 1} lines from stdin; {len(BAD_LINES)} bad" in captured.err


# ------------------------------------------------------------------------------ lists


def test_filled_in_list_keeps_the_lab_format_and_probabilities_sit_beside_it(
    tiny_run, tiny_lab, tmp_path, capsys
):
    target = tmp_path / "out" / "filled.txt"
    target.parent.mkdir()  # --output makes no folders
    assert main(["predict", str(tiny_run), "--output", str(target), "--quiet", "--json"]) == 0
    got, _ = json_out(capsys)
    sibling = tmp_path / "out" / "filled.probabilities.csv"
    assert got == {"filled_in": str(target), "probabilities": str(sibling), "null": []}

    source = (tiny_lab / "test_without_label.txt").read_bytes()
    filled = target.read_bytes()
    assert b"\r" not in filled and filled.endswith(b"\n")
    src_lines, out_lines = source.decode().splitlines(), filled.decode().splitlines()
    assert out_lines[0] == src_lines[0] == "guid,tag"
    assert [line.split(",")[0] for line in out_lines] == [line.split(",")[0] for line in src_lines]
    assert all(re.fullmatch(r"\d+,(positive|neutral|negative)", line) for line in out_lines[1:])

    with open(sibling, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["guid", "tag", "p_positive", "p_neutral", "p_negative"]
    assert [f"{r['guid']},{r['tag']}" for r in rows] == out_lines[1:]
    for row in rows:
        probs = [float(row[f"p_{label}"]) for label in LABELS]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert LABELS[probs.index(max(probs))] == row["tag"]
    # the run's own predictions carry them too
    assert (tiny_run / "predictions" / "test_without_label.probabilities.csv").is_file()


def test_a_relative_list_is_read_from_the_current_folder_else_the_data_folder(
    tiny_run, tiny_lab, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    rows = (tiny_lab / "test_without_label.txt").read_text().splitlines()[:3]
    (tmp_path / "mine.txt").write_text("\n".join(rows) + "\n")
    target = tmp_path / "mine.filled.txt"
    assert main(["predict", str(tiny_run), "--list", "mine.txt", "--output", str(target), "--quiet"]) == 0
    assert len(target.read_text().splitlines()) == 3  # the two pairs of ./mine.txt, not the lab's list
    capsys.readouterr()
    # a name found only in the data folder is the lab's own list there
    assert main(["evaluate", str(tiny_run), "--list", "train.txt", "--quiet", "--json"]) == 0
    assert json_out(capsys)[0]["metrics"]
    assert main(["predict", str(tiny_run), "--list", "nowhere.txt", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert str(tmp_path / "nowhere.txt") in err and str(tiny_lab / "nowhere.txt") in err


def test_an_existing_probabilities_file_is_kept_without_overwrite(tiny_run, tmp_path, capsys):
    target = tmp_path / "filled.txt"
    (tmp_path / "filled.probabilities.csv").write_text("mine\n")
    assert main(["predict", str(tiny_run), "--output", str(target), "--quiet"]) == 3
    assert "filled.probabilities.csv: exists already" in capsys.readouterr().err
    assert not target.exists() and (tmp_path / "filled.probabilities.csv").read_text() == "mine\n"
    assert main(["predict", str(tiny_run), "--output", str(target), "--quiet", "--overwrite"]) == 0
    assert (tmp_path / "filled.probabilities.csv").read_text().startswith("guid,tag,p_positive")


def test_evaluate_json(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run), "--list", "test_with_label.txt", "--json"]) == 0
    got, _ = json_out(capsys)
    assert got["model"] in got["metrics"] and MODELS <= set(got["metrics"])
    assert 0 <= got["metrics"][got["model"]]["accuracy"] <= 1


def test_audit_json_goes_to_stdout_and_strict_exits_1(tiny_lab, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["audit", str(tiny_lab), "--json", "--quiet"]) == 0
    report, _ = json_out(capsys)
    assert report["lists"]["train.txt"]["rows"] == 36
    assert list(tmp_path.iterdir()) == []  # with --json and no --output, no file
    lab = Path(shutil.copytree(tiny_lab, tmp_path / "lab"))
    first = (lab / "train.txt").read_text().splitlines()[1].split(",")[0]
    (lab / "data" / f"{first}.jpg").write_bytes(b"broken")
    target = tmp_path / "audit.json"
    code = main(["audit", str(lab), "--strict", "--json", "--output", str(target), "--quiet"])
    assert code == cli.EXIT_PROBLEMS == 1
    report, _ = json_out(capsys)
    assert report["problems"] and json.loads(target.read_text()) == report
    assert main(["audit", str(lab), "--json", "--quiet"]) == 0  # problems, but not --strict


def test_run_json_is_the_only_thing_on_stdout(tmp_path, tiny_lab, tiny_encoders, capsys):
    image, text = tiny_encoders
    common = ["--data", str(tiny_lab), "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")]
    tiny = ["--encoders.image", image, "--encoders.text", text, "--encoders.max_text_tokens", "24"]
    quick = ["--train.max_epochs", "2", "--train.heads", "linear_probe", "concat", "--split.folds", "3"]
    assert main(["run", *common, *tiny, *quick, "--train.repeats", "1", "--name", "j", "--json"]) == 0
    got, err = json_out(capsys)
    run = tmp_path / "runs" / "j"
    assert got["run"] == str(run) and got["model"] in got["cross_validation"]
    assert got["filled_in"] == str(run / "predictions" / "test_without_label.txt")
    assert Path(got["probabilities"]).is_file()
    assert "[1/2] linear_probe: accuracy" in err  # the per-candidate lines went to stderr
    # stderr is no terminal here (captured, as in a log file): no progress bar is drawn into it
    assert "%|" not in err and "\r" not in err and "it/s" not in err


def test_audit_draws_no_progress_into_a_file(tiny_lab, capsys):
    assert main(["audit", str(tiny_lab), "--output", str(tiny_lab.parent / "a.json")]) == 0
    err = capsys.readouterr().err
    assert "%|" not in err and "\r" not in err and "img/s" not in err


def test_json_output_keeps_library_prints_off_stdout(monkeypatch, capsys, tmp_path):
    def noisy(args):
        print("chatter from below")
        cli.answer(args, {"nan": float("nan"), "path": tmp_path}, "human")
        return 0

    monkeypatch.setattr(cli, "cmd_audit", noisy)
    assert main(["audit", str(tmp_path), "--json"]) == 0
    got, err = json_out(capsys)
    assert got == {"nan": None, "path": str(tmp_path)} and "chatter from below" in err


# ------------------------------------------------------------------------------ exit codes


def test_every_exit_code_is_in_the_help_and_the_readme(capsys):
    assert set(cli.EXIT_CODES) == {0, 1, 2, 3, 4, 130, 143}
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out.split("exit codes:")[1]
    for code, meaning in cli.EXIT_CODES.items():
        assert re.search(rf"^  {code} +{re.escape(meaning)}$", shown, re.M)
    table = GUIDE.read_text().split("## Exit codes")[1].split("\n## ")[0]
    assert {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)} == set(cli.EXIT_CODES)


def failing_with(error: BaseException):
    def command(args):
        raise error

    return command


@pytest.mark.parametrize(
    ("argv", "error", "code"),
    [
        (["predict", "RUN"], ValueError("a bug"), 4),
        (["evaluate", "RUN", "--list", "x.txt"], RuntimeError("a bug"), 4),
        (["run"], KeyboardInterrupt(), 130),
        (["audit", "DATA", "--json"], FileNotFoundError(2, "No such file or directory", "x.txt"), 3),
    ],
)
def test_each_command_maps_its_failures_to_the_documented_codes(monkeypatch, capsys, argv, error, code):
    name = f"cmd_{argv[0]}"
    monkeypatch.setattr(cli, name, failing_with(error))
    assert main(argv) == code
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1


def test_usage_errors_exit_2(capsys):
    assert main(["evaluate"]) == 2  # missing argument
    assert main(["predict", "r", "--no-such"]) == 2  # unknown option
    assert main(["compare", "--seeds", "x"]) == 2  # bad value
    assert capsys.readouterr().out == ""
