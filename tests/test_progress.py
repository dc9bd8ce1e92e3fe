"""The overall progress display: drawn on a terminal only, one at a time, and each long command's
plan (step k of n) matches the steps it takes."""

from __future__ import annotations

import re

import pytest

from conftest import tiny_config
from mmsent import progress
from mmsent.cli.main import main


@pytest.fixture
def drawn(monkeypatch):
    """Draw as on a terminal (captured stderr is not one)."""
    monkeypatch.setattr(progress, "drawable", lambda enabled: enabled)


def final_step(err: str) -> tuple[int, int]:
    """(k, n) of the display's last "step k/n"."""
    k, n = re.findall(r"step (\d+)/(\d+)", err)[-1]
    return int(k), int(n)


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(capsys):
    with progress.overall_progress(2, "demo"):
        assert progress.inner_bars(True)  # no display open: a step may show its own bars
        progress.step_done()
        progress.step_done()
    assert capsys.readouterr().err == ""


def test_one_display_counts_steps_and_weights(drawn, capsys):
    with progress.overall_progress(3, "demo", units=5):
        with progress.overall_progress(9, "inner"):  # inside an open display: opens nothing
            progress.step_done(what="first")
        assert not progress.inner_bars(True)
        progress.step_done(weight=3)
        progress.progress_note("a line above the bar")
        progress.step_done()
    assert progress.inner_bars(True)
    err = capsys.readouterr().err
    assert final_step(err) == (3, 3) and "a line above the bar" in err and "inner" not in err


def test_quiet_draws_nothing(drawn, capsys):
    with progress.overall_progress(1, "demo", enabled=False):
        progress.step_done()
    progress.progress_note("hidden", enabled=False)
    assert capsys.readouterr().err == ""


def test_the_main_job_counts_every_fit(drawn, capsys, tmp_path, tiny_lab, tiny_encoders):
    from mmsent import pipeline

    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path, heads=["linear_probe", "concat"], max_epochs=2)
    cfg.split.folds, cfg.train.repeats = 3, 2
    pipeline.train(cfg, progress=True)
    # the probe once per fold and on all pairs; concat twice (two seeds) each time
    assert final_step(capsys.readouterr().err) == (12, 12) == (pipeline.planned_fits(cfg),) * 2


def tiny_flags(tmp_path, lab, encoders) -> list[str]:
    image, text = encoders
    return [
        *("--data", str(lab), "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")),
        *("--encoders.image", image, "--encoders.text", text, "--encoders.max_text_tokens", "24"),
    ]


def test_compare_cv_and_search_count_every_fit(drawn, capsys, tmp_path, tiny_lab, tiny_encoders):
    flags = tiny_flags(tmp_path, tiny_lab, tiny_encoders)
    heads = ["--train.heads", "linear_probe", "text_only", "--train.max_epochs", "2"]
    assert main(["compare", *flags, *heads, "--seeds", "0", "1"]) == 0
    assert final_step(capsys.readouterr().err) == (4, 4)
    assert main(["cv", *flags, *heads, "--folds", "3", "--seeds", "0", "1"]) == 0
    assert final_step(capsys.readouterr().err) == (12, 12)
    search = ["--train.heads", "text_only", "--trials", "2", "--folds", "3", "--max-epochs", "2"]
    assert main(["search", *flags, *search]) == 0
    assert final_step(capsys.readouterr().err) == (6, 6)


def test_an_ensemble_counts_its_folds_finals_and_probe(drawn, capsys, tmp_path, tiny_lab, tiny_encoders):
    from mmsent.recipes.ensemble_run import ensemble_run
    from mmsent.train.recipe import Recipe

    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path)
    recipes = [Recipe("text_only", epochs=2, name="a"), Recipe("concat", epochs=2, name="b")]
    ensemble_run(cfg, recipes, seeds=[0, 1], folds=3, predict_test=False, progress=True)
    # 2 recipes x 2 seeds x (3 folds + all pairs), and the probe's 3 folds
    assert final_step(capsys.readouterr().err) == (19, 19)
