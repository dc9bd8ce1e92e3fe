"""The command line's start-up and its exit codes (documented in docs/guide.md, "Exit codes")."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mmsent
from mmsent.cli import main as cli
from mmsent.errors import MmsentError

HEAVY = ("torch", "lightning", "transformers", "optuna", "sklearn")

# In a fresh interpreter: import the command line, show every command's help, fail on a missing
# configuration file and on a missing run folder; then list the heavy libraries imported on the way.
PROBE = """
import contextlib, io, sys
from mmsent.cli.main import build_parser, main
heavy = {heavy!r}
loaded = [name for name in heavy if name in sys.modules]
commands = build_parser()._subparsers._group_actions[0].choices
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [main([name, "--help"]) for name in commands]
    codes += [main(["run", "--config", "missing.yaml"]), main(["predict", "no-such-run"])]
print((loaded, sorted({{name for name in heavy if name in sys.modules}}), codes))
"""


def run_mmsent(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    source = str(Path(mmsent.__file__).parents[1])
    paths = [source, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_the_command_line_imports_no_heavy_library(tmp_path):
    done = run_mmsent("-c", PROBE.format(heavy=HEAVY), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    at_import, after_help, codes = ast.literal_eval(done.stdout)
    assert at_import == [] and after_help == []
    assert set(codes[:-2]) == {0} and codes[-2:] == [3, 3]


def test_python_m_mmsent_and_version():
    done = run_mmsent("-m", "mmsent", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"mmsent {mmsent.__version__}"


def test_usage_error_exits_2():
    done = run_mmsent("-m", "mmsent", "run", "--no-such-option")
    assert done.returncode == 2 and "unrecognized arguments: --no-such-option" in done.stderr


def test_bad_input_exits_3_with_one_line(tmp_path):
    done = run_mmsent("-m", "mmsent", "run", "--data", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert done.returncode == 3
    assert done.stderr.startswith("mmsent: error: ") and len(done.stderr.splitlines()) == 1


def failing_with(error: BaseException):
    def command(args):
        raise error

    return command


def test_an_internal_error_exits_4_with_one_line_and_a_hint(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "cmd_audit", failing_with(ZeroDivisionError("division by zero\nmore")))
    assert cli.main(["audit", str(tmp_path)]) == cli.EXIT_INTERNAL == 4
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "mmsent: internal error: ZeroDivisionError: division by zero (rerun with -v for the traceback)"
    ]
    assert cli.main(["audit", str(tmp_path), "-v"]) == 4
    assert "Traceback" in capsys.readouterr().err


def test_bad_input_exits_3(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "cmd_audit", failing_with(MmsentError("no such list", tmp_path / "x.txt", 3)))
    assert cli.main(["audit", str(tmp_path)]) == cli.EXIT_INPUT == 3
    assert capsys.readouterr().err == f"mmsent: error: {tmp_path / 'x.txt'}:3: no such list\n"


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "cmd_audit", failing_with(KeyboardInterrupt()))
    assert cli.main(["audit", str(tmp_path)]) == cli.EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "mmsent: interrupted\n"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["run", "--help-all"], ["--version"]])
def test_help_and_version_exit_0(argv, capsys):
    assert cli.main(argv) == 0
    assert capsys.readouterr().out
