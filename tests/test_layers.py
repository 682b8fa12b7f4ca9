"""The layer rules of DESIGN.md, enforced: engine never imports Qt or app; app never imports
torch, onnxruntime, open_clip, hnswlib or rawpy (RAW files are decoded by the engine); engine
never imports torch (training is the extra)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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
