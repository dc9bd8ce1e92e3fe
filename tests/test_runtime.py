"""The allocator settings applied at import: on by default under glibc, off on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmsent import runtime

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _settings_in_a_fresh_process(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "MMSENT_MALLOC"))}
    clean.pop("GLIBC_TUNABLES", None)
    code = "import json, mmsent.runtime as r; print(json.dumps(r.tune_allocator()))"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, "PYTHONPATH": SRC, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(runtime.glibc() is None, reason="mallopt is glibc's")
def test_importing_mmsent_raises_the_thresholds():
    assert _settings_in_a_fresh_process() == {name: value for name, (_, value) in runtime.SETTINGS.items()}


def test_the_switch_and_a_users_own_malloc_settings_leave_glibc_alone():
    assert _settings_in_a_fresh_process(MMSENT_MALLOC="default") == {}
    assert _settings_in_a_fresh_process(MALLOC_ARENA_MAX="2", MALLOC_TOP_PAD_="1") == {}
