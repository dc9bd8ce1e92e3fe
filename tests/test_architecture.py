"""The layers hold: no module imports a layer above its own, and no two modules import each other
in a circle (lazy imports inside functions count too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_layer_contract_holds():
    # import-linter reads the contract from pyproject.toml ([tool.importlinter]).
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_no_import_cycle():
    # The project's shared checker: every import, lazy ones inside functions too.
    checker = ROOT.parent / "shared" / "tools" / "import_cycles.py"
    if not checker.is_file():
        pytest.skip("../shared/tools/import_cycles.py is not beside this checkout")
    result = subprocess.run(
        [sys.executable, str(checker), str(ROOT / "src"), "mmsent"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "no cycle" in result.stdout, result.stdout
