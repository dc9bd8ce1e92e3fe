import argparse
from pathlib import Path

import pytest

from mmsent.cli.main import build_parser, main
from mmsent.cli.options import HEAD_TRAINING, config_fields, picked, resolve_config
from mmsent.config import RunConfig
from mmsent.errors import UsageError
from mmsent.finetune.config import EndToEndConfig, FinetuneConfig


def parse(*argv):
    return resolve_config(build_parser().parse_args(["train", *argv]))


def commands() -> dict[str, argparse.ArgumentParser]:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def options_of(command: argparse.ArgumentParser) -> list[str]:
    return [flag for action in command._actions for flag in action.option_strings]


def help_text(capsys, *argv) -> str:
    assert main([*argv]) == 0
    return capsys.readouterr().out


def test_defaults_when_nothing_is_given():
    cfg = parse()
    # The one difference: the default store's `~` is expanded where the configuration is read.
    assert cfg.encoders.cache == Path.home() / ".cache" / "mmsent" / "features"
    cfg.encoders.cache = RunConfig().encoders.cache
    assert cfg == RunConfig()


def test_every_configured_path_has_its_home_folder_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "c.yaml"
    config.write_text("out: ~/runs\ntrain:\n  log_dir: ~/tb\n")
    cfg = parse("--config", str(config), "--data", "~/lab", "--cache", "~/store")
    assert (cfg.data.root, cfg.encoders.cache) == (tmp_path / "lab", tmp_path / "store")
    assert (cfg.out, cfg.train.log_dir) == (tmp_path / "runs", tmp_path / "tb")
    with pytest.raises(UsageError, match="argument --cache: cannot expand '~no-such-user-here/x'"):
        parse("--cache", "~no-such-user-here/x")


def test_yaml_then_flags_take_precedence(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: 0.5\n  max_epochs: 3\ndata:\n  clean:\n    hashtags: drop\n")
    cfg = parse("--config", str(config), "--train.max_epochs", "7", "--data", "/x", "--data.skip_bad")
    assert cfg.train.lr == 0.5  # from the file
    assert cfg.train.max_epochs == 7  # the flag wins over the file
    assert cfg.data.clean.hashtags == "drop"
    assert cfg.data.root == Path("/x") and cfg.data.skip_bad is True


def test_every_field_train_reads_has_a_flag():
    cfg = parse(
        "--train.heads", "concat", "gated_image", "--no-data.clean.strip_links", "--encoders.workers", "0"
    )
    assert cfg.train.heads == ["concat", "gated_image"]
    assert cfg.data.clean.strip_links is False
    assert cfg.encoders.workers == 0
    offered = set(options_of(commands()["train"]))
    for field in config_fields(RunConfig()):
        if picked(field.name, HEAD_TRAINING):
            assert {"--data", "--cache", f"--{field.name}"} & offered, field.name


def test_one_spelling_per_option():
    for name, command in commands().items():
        for action in command._actions:
            flags = action.option_strings
            if isinstance(action, argparse.BooleanOptionalAction):
                assert len(flags) == 2 and flags[1] == "--no-" + flags[0][2:], (name, flags)
            elif flags not in (["-h", "--help"], ["-v", "--verbose"]):
                assert len(flags) <= 1, (name, flags)
            for flag in flags:
                if "." in flag:  # a config field: spelt as in configs/default.yaml
                    assert "-" not in flag.removeprefix("--no-").removeprefix("--"), (name, flag)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--skip-bad"],  # the old short forms and dashed spellings are gone
        ["train", "--data.skip-bad"],
        ["train", "--train.max-epochs", "3"],
        ["train", "--train.max", "3"],  # no abbreviations either
        ["search", "--split.folds", "3"],  # search has --folds
        ["search", "--train.lr", "0.1"],  # options a command does not read are not offered
        ["ensemble", "--recipes", "r.yaml", "--train.lr", "0.1"],
        ["cv", "--quality"],
        ["train", "--quality"],
        ["compare", "--train.seed", "1"],  # compare has --seeds
        ["compare", "--train.jobs", "2"],  # compare trains one fit after another
        ["run", "--split.fold", "1"],  # the main job cross-validates: no single split
        ["train", "--split.val_fraction", "0.2"],
        ["tune"],  # the search is `search`
    ],
)
def test_what_a_command_does_not_take_is_a_usage_error(capsys, argv):
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, meant",
    [
        (["run", "--skip-bad"], "--data.skip_bad"),  # an old spelling
        (["predict", "r", "--imgae", "x.jpg"], "--image"),  # typos
        (["predict", "r", "--jsn"], "--json"),
        (["serve", "r", "--prot", "80"], "--port"),
        (["run", "--train.lrr", "3"], "--train.lr"),
        (["rnu"], "run"),  # a command
        (["evalute", "r"], "evaluate"),
    ],
)
def test_a_near_miss_names_the_spelling_to_use(capsys, argv, meant):
    assert main(argv) == 2
    assert f"did you mean {meant}?" in capsys.readouterr().err


def test_an_unknown_command_far_from_any_lists_them(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "run" in err and "did you mean" not in err


def test_only_run_takes_quality():
    assert [name for name, command in commands().items() if "--quality" in options_of(command)] == ["run"]


@pytest.mark.parametrize("argv", [["compare"], ["cv"], ["ensemble", "--recipes", "r.yaml"]])
def test_seeds_is_a_list_of_seeds_everywhere(argv):
    assert isinstance(build_parser().parse_args(argv).seeds, list)
    assert build_parser().parse_args([*argv, "--seeds", "4", "7"]).seeds == [4, 7]


def test_global_flags_go_before_or_after_the_command():
    args = build_parser().parse_args(["run", "-v", "--quiet"])
    assert args.verbose and args.quiet
    args = build_parser().parse_args(["-v", "run"])
    assert args.verbose and not args.quiet


def test_every_field_is_documented():
    configs = [RunConfig(), FinetuneConfig(), EndToEndConfig()]
    undocumented = [f.name for config in configs for f in config_fields(config) if not f.doc]
    assert undocumented == []


def test_help_shows_the_field_documentation(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = help_text(capsys, "run", "--help")
    assert "skip and list bad pairs instead of stopping at the first" in text  # DataConfig.skip_bad's doc


def test_run_help_fits_on_a_screen_and_help_all_shows_the_rest(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    short = help_text(capsys, "run", "--help")
    assert len(short.splitlines()) <= 50
    assert "--train.precision" not in short and "--help-all" in short
    everything = help_text(capsys, "run", "--help-all")
    for flag in options_of(commands()["run"]):
        assert flag in everything


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_command_help_ends_with_an_example(capsys, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "100")
    lines = help_text(capsys, command, "--help").rstrip().splitlines()
    examples = lines[lines.index("example:") + 1 :]
    assert examples and "mmsent " in examples[0] and all(line.startswith("  ") for line in examples)


def test_ft_text_options_need_finetune_text(capsys):
    assert main(["cv", "--split.seed", "3"]) == 3
    assert "--split.seed only applies with --finetune-text" in capsys.readouterr().err


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
    assert main(["train", "--config", str(config)]) == 3
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
    assert main(["train", "--config", str(config)]) == 3
    assert "option train.lr must be float, not 'fast'" in capsys.readouterr().err


def test_default_config_file_lists_the_defaults():
    import yaml

    from mmsent.config import to_plain

    shipped = yaml.safe_load((Path(__file__).parents[1] / "configs" / "default.yaml").read_text())
    assert shipped == to_plain(RunConfig())
