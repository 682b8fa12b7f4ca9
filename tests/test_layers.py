"""The layer rules of DESIGN.md, enforced: engine never imports Qt or app; app never imports
torch, onnxruntime, open_clip, hnswlib or rawpy (RAW files are decoded by the engine); engine
never imports torch (training is the extra), nor training (benchmarks aside); no import cycles,
between modules or between folders; no file over 800 lines; README's diagram of the folders
is what packaging/import_graph.py makes from the code now."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "packaging" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IG = _import_graph()

RULES = {
    "engine": {"PySide6", "PyQt5", "PyQt6", "app", "torch", "open_clip", "torchvision", "timm"},
    "app": {"torch", "onnxruntime", "open_clip", "hnswlib", "torchvision", "timm", "rawpy"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module.split(".")[0])
    return mods


def _files(pkg):
    return sorted((ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("pkg", sorted(RULES))
def test_layer_imports(pkg):
    files = _files(pkg)
    if pkg == "engine":
        assert files, "engine/ has no Python files"
    bad = {
        str(f.relative_to(ROOT)): sorted(imported_modules(f) & RULES[pkg])
        for f in files
        if imported_modules(f) & RULES[pkg]
    }
    assert not bad, f"forbidden imports: {bad}"


def test_rule_checker_catches_a_violation(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom torch import nn\ndef f():\n    import PySide6.QtCore\n")
    assert imported_modules(f) >= {"torch", "PySide6"}


def test_no_import_cycles():
    g = IG.graph()
    assert len(g) > 100, "the import graph found too few modules"
    assert IG.cycles(g) == []
    assert IG.cycles(IG.folder_graph(g)) == []


def test_engine_never_imports_training():
    """Torch work runs as a child process (engine.child); only the benchmarks build demo data."""
    g = IG.graph()
    assert g["engine.bench.quality"] & {"training.demo.world", "training.demo.captions"}  # seen
    assert IG.training_leaks(g) == {}


def test_no_file_over_800_lines():
    assert IG.oversized() == {}


def test_readme_diagram_is_made_from_the_code():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert IG.readme_diagram(text) == IG.diagram(), (
        "README's architecture diagram is out of date: python packaging/import_graph.py --readme"
    )


def test_the_checks_catch_a_planted_cycle_a_leak_and_a_big_file(tmp_path):
    files = {
        "engine/__init__.py": "",
        "engine/a.py": "from .b import f\n",
        # an import only type checkers see still makes a cycle
        "engine/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from engine.a import X\n",
        "engine/c.py": "def convert():\n    from training.t import export\n",
        "engine/pkg/__init__.py": "from .m import z\n",  # a package and its own module: fine
        "engine/pkg/m.py": "from engine.pkg import q\n",
        # folders p and q import each other, though no module imports itself back
        "engine/p/__init__.py": "",
        "engine/p/one.py": "from engine.q.two import y\n",
        "engine/p/three.py": "",
        "engine/q/__init__.py": "",
        "engine/q/two.py": "from engine.p.three import z\n",
        "engine/bench/__init__.py": "",
        "engine/bench/run.py": "import training.t\n",  # benchmarks may
        "training/__init__.py": "",
        "training/t.py": "import engine.pkg\n" + "x = 1\n" * 801,
        "app/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    g = IG.graph(tmp_path)
    assert IG.cycles(g) == [["engine.a", "engine.b", "engine.a"]]
    assert IG.training_leaks(g) == {"engine.c": ["training.t"]}
    assert IG.oversized(tmp_path) == {"training/t.py": 802}
    assert ["engine.p", "engine.q", "engine.p"] in IG.cycles(IG.folder_graph(g))
    found = IG.problems(tmp_path)
    assert any("engine.a -> engine.b -> engine.a" in p for p in found)
    assert any(p.startswith("engine.c imports training.t") for p in found)
    assert any(p.startswith("training/t.py has 802 lines") for p in found)
    assert any("between folders: engine.p -> engine.q -> engine.p" in p for p in found)


def test_a_stale_readme_diagram_is_seen_and_rewritten(tmp_path):
    for name in ("engine/__init__.py", "engine/errors.py", "engine/store/__init__.py", "app/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "engine/store/db.py").write_text("from ..errors import DatabaseError\n", encoding="utf-8")
    (tmp_path / "training").mkdir()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{IG.BEGIN}\nold picture\n{IG.END}\nrest\n", encoding="utf-8")
    assert IG.readme_diagram(readme.read_text()) != IG.diagram(tmp_path)
    assert IG.write_readme(tmp_path) is True
    text = readme.read_text()
    assert IG.readme_diagram(text) == IG.diagram(tmp_path) and text.endswith(f"{IG.END}\nrest\n")
    assert "engine_store --> engine_errors" in text and "old picture" not in text
    assert IG.write_readme(tmp_path) is False
