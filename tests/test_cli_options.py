from pathlib import Path

import pytest

from mmsent.cli.main import build_parser, main
from mmsent.cli.options import resolve_config
from mmsent.config import RunConfig


def parse(*argv):
    return resolve_config(build_parser().parse_args(["train", *argv]))


def test_defaults_when_nothing_is_given():
    assert parse() == RunConfig()


def test_yaml_then_flags_take_precedence(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: 0.5\n  max_epochs: 3\ndata:\n  clean:\n    hashtags: drop\n")
    cfg = parse("--config", str(config), "--train.max-epochs", "7", "--data", "/x", "--skip-bad")
    assert cfg.train.lr == 0.5  # from the file
    assert cfg.train.max_epochs == 7  # the flag wins over the file
    assert cfg.data.clean.hashtags == "drop"
    assert cfg.data.root == Path("/x") and cfg.data.skip_bad is True


def test_every_field_has_a_flag():
    cfg = parse(
        "--train.heads", "concat", "gated_image", "--no-data.clean.strip-links", "--encoders.workers", "0"
    )
    assert cfg.train.heads == ["concat", "gated_image"]
    assert cfg.data.clean.strip_links is False
    assert cfg.encoders.workers == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  nope: 1\n", "unknown option 'train.nope'"),
        ("train: 3\n", "must be a section"),
        ("a: [", "not valid YAML"),
    ],
)
def test_bad_config_file_is_one_clear_line(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err and "Traceback" not in err


def test_bad_flag_value_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "--train.loss", "hinge"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_wrong_value_type_in_yaml_names_the_option(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: fast\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "option train.lr must be float, not 'fast'" in capsys.readouterr().err


def test_default_config_file_lists_the_defaults():
    import yaml

    from mmsent.config import to_plain

    shipped = yaml.safe_load((Path(__file__).parents[1] / "configs" / "default.yaml").read_text())
    assert shipped == to_plain(RunConfig())
