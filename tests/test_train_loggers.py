"""`--train.logger tensorboard`: TensorBoard event files from the Lightning engine, beside the CSV log
the curves are read from; a clear one-line error where it cannot log (plain engine, no package)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import tiny_config
from mmsent.cli.main import main
from mmsent.config import TrainConfig
from mmsent.errors import MmsentError
from mmsent.features.encode import load_table
from mmsent.train.fit import FitSettings, check_logger, fit
from mmsent.train.recipe import Recipe

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture
def no_tensorboard(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a),
    )


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="pip install 'mmsent[tensorboard]'")
def test_the_lightning_engine_writes_tensorboard_events(tmp_path, tiny_lab, tiny_encoders):
    table = load_table(tiny_config(tiny_lab, tiny_encoders, tmp_path), progress=False)
    options = TrainConfig(
        engine="lightning", accelerator="cpu", logger="tensorboard", log_dir=tmp_path / "tb"
    )
    rows = np.arange(len(table))

    def fit_concat():
        recipe, cache = Recipe("concat", epochs=2, name="concat"), tmp_path / "fits"
        return fit(
            recipe, table, rows[:24], rows[24:], settings=FitSettings("lightning", options, cache=cache)
        )

    fitted = fit_concat()
    events = list((tmp_path / "tb" / "concat").glob("version_0/events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    assert [e["epoch"] for e in fitted.history] == [0, 1]  # the CSV log still gives the curves
    # a second fit of the same spec trains again (not read back from the fit cache), so it logs too
    fit_concat()
    assert (tmp_path / "tb" / "concat" / "version_1").is_dir()


def test_tensorboard_needs_the_lightning_engine():
    check_logger(TrainConfig(), "plain")  # csv: any engine
    with pytest.raises(MmsentError, match="Lightning engine only; add --train.engine lightning"):
        check_logger(TrainConfig(logger="tensorboard"), "plain")


def test_tensorboard_without_the_package_is_one_line_and_exit_3(no_tensorboard, tmp_path, tiny_lab, capsys):
    with pytest.raises(MmsentError, match=r"pip install 'mmsent\[tensorboard\]'"):
        check_logger(TrainConfig(logger="tensorboard"), "lightning")
    flags = ["--data", str(tiny_lab), "--out", str(tmp_path), "--train.logger", "tensorboard"]
    assert main(["compare", *flags, "--train.engine", "lightning"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("mmsent: error: --train.logger tensorboard needs") and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing started
