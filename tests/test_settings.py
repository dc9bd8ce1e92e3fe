"""Settings checked before any folder is made, and what a run leaves behind when it stops
(issue 19, item 3). Each test failed on the code before the fix."""

from __future__ import annotations

import os
import signal

import pytest

from conftest import make_lab, tiny_config
from mmsent import pipeline
from mmsent.cli.main import main
from mmsent.errors import BadSetting
from test_reliability import cli_common

# Values accepted by the parser that failed only later, with <name>.partial already made.
BAD_FLAGS = [
    (["--train.dropout", "2"], "argument --train.dropout: must be a number in [0, 1), not 2.0"),
    (["--train.lr", "nan"], "argument --train.lr: must be a number > 0, not nan"),
    (["--train.weight_decay", "-1"], "argument --train.weight_decay: must be a number >= 0, not -1.0"),
    (["--train.max_epochs", "0"], "argument --train.max_epochs: must be a whole number >= 1, not 0"),
    (["--train.batch_size", "-8"], "argument --train.batch_size: must be a whole number >= 1, not -8"),
    (["--train.patience", "-1"], "argument --train.patience: must be a whole number >= 0, not -1"),
    (["--split.folds", "1"], "argument --split.folds: must be a whole number >= 2, not 1"),
    (["--train.label_smoothing", "inf"], "argument --train.label_smoothing: must be a number in [0, 1)"),
    (["--split.val_fraction", "0"], "argument --split.val_fraction: must be a number in (0, 1), not 0.0"),
    (["--train.repeats", "0"], "argument --train.repeats: must be a whole number >= 1, not 0"),
    (["--encoders.max_text_tokens", "0"], "argument --encoders.max_text_tokens: must be a whole number >= 1"),
    (["--train.seed", "-3"], "argument --train.seed: must be a whole number in [0, 4294967295], not -3"),
    (["--split.fold", "5"], "argument --split.fold: must be below split.folds (3), not 5"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[f[0][0] for f in BAD_FLAGS])
def test_a_bad_value_on_the_command_line_is_a_usage_error_before_any_folder(
    flags, message, tmp_path, tiny_lab, tiny_encoders, capsys
):
    # the single split's options belong to compare and finetune; the main job cross-validates
    name = "compare" if flags[0] in ("--split.val_fraction", "--split.fold") else "run"
    command = [name, *cli_common(tiny_lab, tmp_path, tiny_encoders), "--name", "bad", *flags]
    assert main(command) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"usage: mmsent {name}") and err[-1].startswith(
        f"mmsent {name}: error: {message}"
    )
    assert len(err) == 2
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_a_bad_value_in_the_config_file_names_the_file_and_the_option(tmp_path, tiny_lab, capsys):
    config = tmp_path / "my.yaml"
    config.write_text("train:\n  dropout: 1.5\n")
    assert main(["train", "--config", str(config), "--data", str(tiny_lab), "--out", str(tmp_path)]) == 3
    assert capsys.readouterr().err == (
        f"mmsent: error: {config}: option train.dropout must be a number in [0, 1), not 1.5\n"
    )
    assert list(tmp_path.iterdir()) == [config]


def test_a_bad_setting_from_python_is_named_before_any_folder(tmp_path, tiny_lab, tiny_encoders):
    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path, lr=float("nan"))
    with pytest.raises(BadSetting, match="option train.lr must be a number > 0, not nan"):
        pipeline.run_all(cfg, progress=False)
    assert not (tmp_path / "runs").exists()


def test_cache_naming_a_file_is_one_line(tmp_path, tiny_lab, capsys):
    a_file = tmp_path / "store"
    a_file.write_text("")
    assert main(["extract", "--data", str(tiny_lab), "--cache", str(a_file), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"mmsent extract: error: argument --cache: must name a folder, but it is a file: '{a_file}'"
    )
    assert main(["extract", "--data", str(tiny_lab), "--cache", str(a_file / "sub"), "--quiet"]) == 2
    assert f"but '{a_file}' in it is a file" in capsys.readouterr().err


def test_a_failed_run_removes_its_partial_folder(tmp_path, tiny_encoders, monkeypatch, capsys):
    from mmsent.train import loop

    lab = make_lab(tmp_path / "lab", n_per_class=4, n_test=3)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug half-way through training")

    monkeypatch.setattr(loop, "validation_loss", broken)
    command = ["run", *cli_common(lab, tmp_path, tiny_encoders), "--name", "failed", "--train.jobs", "1"]
    assert main(command) == 4
    assert "RuntimeError: a bug half-way through training" in capsys.readouterr().err
    assert list((tmp_path / "runs").iterdir()) == []  # no failed.partial filling the disk


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_sigterm_exits_143_with_one_line_and_leaves_the_partial_folder(
    engine, tmp_path, tiny_encoders, monkeypatch, capsys
):
    from mmsent.train import loop
    from mmsent.train.lightning import HeadModule

    lab = make_lab(tmp_path / "lab", n_per_class=4, n_test=3)
    target, name = (loop, "validation_loss") if engine == "plain" else (HeadModule, "training_step")
    original = getattr(target, name)

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill` and job schedulers send
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, terminated)
    before = signal.getsignal(signal.SIGTERM)
    command = ["run", *cli_common(lab, tmp_path, tiny_encoders), "--name", "stopped", "--train.jobs", "1"]
    assert main([*command, "--train.engine", engine]) == 143
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == "mmsent: terminated (SIGTERM)" and "Traceback" not in err
    # Interrupted, not failed: the folder stays for the next run of the name to clear.
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["stopped.partial"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler was the command's only


def test_predict_output_never_makes_folders(tiny_run, tmp_path, capsys):
    target = tmp_path / "no" / "such" / "filled.txt"
    assert main(["predict", str(tiny_run), "--output", str(target), "--quiet"]) == 3
    assert capsys.readouterr().err == (
        f"mmsent: error: {target.parent}: no such folder for --output (it is not created)\n"
    )
    assert not (tmp_path / "no").exists()


def test_the_edge_values_that_mean_something_are_accepted():
    from mmsent.cli.main import build_parser
    from mmsent.cli.options import resolve_config

    flags = ["--train.hidden", "0", "--train.patience", "0", "--encoders.workers", "0", "--train.jobs", "0"]
    flags += ["--train.dropout", "0", "--train.weight_decay", "0", "--train.seed", "0"]
    cfg = resolve_config(build_parser().parse_args(["run", *flags]))
    assert (cfg.train.hidden, cfg.train.jobs, cfg.split.fold, cfg.train.dropout) == (0, 0, -1, 0.0)
