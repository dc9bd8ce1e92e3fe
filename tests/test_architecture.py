"""The layers hold: no module imports a layer above its own, and no two modules import each other
in a circle (lazy imports inside functions count too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    # grimp (import-linter's graph) sees every import, lazy ones inside functions too. A cycle is
    # a module that can reach itself: an import chain leading from one of its imports back to it.
    import grimp

    graph = grimp.build_graph("mmsent")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append(" -> ".join((module, *chain)))
    assert not cycles, "\n".join(cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    # The check above must be able to fail: two modules importing each other are found.
    import grimp

    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from circle import b\n")
    (package / "b.py").write_text("from circle import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("circle", cache_dir=None)
    assert graph.find_shortest_chain(importer="circle.b", imported="circle.a")
    assert graph.find_shortest_chain(importer="circle.a", imported="circle.b")
