"""Model files: only safe formats are read, and a damaged or mismatched file is refused clearly.

* No code in the project unpickles: ``torch.load`` always with ``weights_only=True``, no
  pickle/dill/joblib/cloudpickle imports in the product, no ``np.load(allow_pickle=True)``
  (checked on the source's syntax tree, with a self-test that the checker catches them).
* A model folder full of booby-trapped pickles is imported, indexed and searched; none is
  ever unpickled (the trap would leave a marker file).
* A bit-flipped, truncated or swapped ONNX file, or a model.json that disagrees with its
  files, gives a ModelError that says which file and what to do; through the engine, a
  scan with such a model fails with ``model_error`` and the engine keeps running.
"""

from __future__ import annotations

import ast
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.errors import ModelError
from engine.library import Library
from engine.models.hub import import_model_folder, local_model_folder
from engine.models.registry import Registry
from engine.models.runtime import OnnxModel
from engine.service import protocol as P
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY
from tests.helpers import make_photos
from tests.reliability.harness import TIMEOUT, engine_client, make_data_dir, record

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("engine", "app", "training", "packaging")
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def unsafe_loads(source: str, *, product: bool) -> list[str]:
    """Calls (and, in product code, imports) that could unpickle untrusted bytes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("torch.load", "torch.serialization.load") and not _kw_true(
                node, "weights_only"
            ):
                found.append(f"line {node.lineno}: {name} without weights_only=True")
            elif name.endswith(("np.load", "numpy.load")) and _kw_true(node, "allow_pickle"):
                found.append(f"line {node.lineno}: {name}(allow_pickle=True)")
            elif name in ("torch.jit.load", "pd.read_pickle", "pandas.read_pickle"):
                found.append(f"line {node.lineno}: {name}")
        elif product and isinstance(node, ast.Import | ast.ImportFrom):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            found += [
                f"line {node.lineno}: imports {m}" for m in mods if m.split(".")[0] in UNPICKLERS
            ]
    return found


def test_the_checker_catches_what_it_looks_for():
    bad = "import pickle\nimport torch, numpy as np\ntorch.load(f)\ntorch.load(f, weights_only=False)\nnp.load(f, allow_pickle=True)\n"
    assert len(unsafe_loads(bad, product=True)) == 4
    good = "import torch, numpy as np\ntorch.load(f, map_location='cpu', weights_only=True)\nnp.load(f)\n"
    assert unsafe_loads(good, product=True) == []


def _project_sources(dirs) -> list[Path]:
    """The project's own .py files: what git tracks or would (build outputs such as
    PyInstaller's work folders are ignored), or every .py file outside a checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", *dirs],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return [p for d in dirs for p in (ROOT / d).rglob("*.py")]
    return [ROOT / line for line in out.splitlines() if line.endswith(".py")]


def test_nothing_in_the_project_unpickles():
    problems = []
    files = _project_sources((*PRODUCT, "tests"))
    assert len(files) > 50
    for path in files:
        rel = path.relative_to(ROOT)
        for p in unsafe_loads(path.read_text(encoding="utf-8"), product=rel.parts[0] in PRODUCT):
            problems.append(f"{rel} {p}")
    assert not problems, "\n".join(problems)


class _Trap:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickles_in_a_model_folder_are_never_unpickled(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    spec = Registry.load().get(MODEL_KEY)
    src = tmp_path / "trapped"
    shutil.copytree(local_model_folder(spec, settings), src)
    marker = tmp_path / "UNPICKLED"
    for name in (
        "pytorch_model.bin",
        "open_clip_pytorch_model.bin",
        "open_clip_model.pt",
        "model.pkl",
        "image.pt",
    ):
        (src / name).write_bytes(pickle.dumps(_Trap(marker)))
    import_model_folder(src, settings)
    lib = Library(settings, model_key=MODEL_KEY)
    try:
        assert lib.model().folder == settings.models_dir / MODEL_KEY  # the copy with the traps
        photos = make_photos(tmp_path / "photos", 4)
        lib.add_folder(tmp_path / "photos")
        assert lib.scan().embedded == 4
        assert lib.search("a photo", k=4)
        assert {h.path for h in lib.search("a photo", k=4)} == {str(p) for p in photos}
    finally:
        lib.close()
    assert not marker.exists(), "a pickle in the model folder was unpickled"


# -- damaged and mismatched model files ------------------------------------------------------


def _demo_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(
        local_model_folder(Registry.load().get(MODEL_KEY), Settings(data_dir=tmp_path)), dst
    )
    return dst


def _flip_a_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) * 2 // 3] ^= 0x40  # deep in the weights: ONNX still parses, vectors go wrong
    p.write_bytes(bytes(data))


def _edit_json(folder: Path, fn) -> None:
    d = json.loads((folder / "model.json").read_text())
    fn(d)
    (folder / "model.json").write_text(json.dumps(d))


def _swap_towers(folder: Path) -> None:
    a, b = folder / "image.onnx", folder / "text.onnx"
    a.rename(folder / "tmp.onnx")
    b.rename(a)
    (folder / "tmp.onnx").rename(b)
    _edit_json(folder, lambda d: d["source"].update(files={}))  # no checksums to catch it first


DAMAGE = {
    "bit-flip": (lambda f: _flip_a_byte(f / "image.onnx"), "image.onnx does not match its checksum"),
    "truncated": (lambda f: (f / "image.onnx").write_bytes((f / "image.onnx").read_bytes()[:5000]),
                  "image.onnx is 5000 bytes"),
    "truncated-unlisted": (lambda f: ((f / "image.onnx").write_bytes((f / "image.onnx").read_bytes()[:5000]),
                                      _edit_json(f, lambda d: d["source"].update(files={}))),
                           "image.onnx cannot be loaded"),
    "tokenizer-garbage": (lambda f: (f / "tokenizer.json").write_text("{}"), "tokenizer.json is 2 bytes"),
    "towers-swapped": (_swap_towers, "takes input of shape"),
    "wrong-image-size": (lambda f: _edit_json(f, lambda d: d["preprocess"].update(size=[64, 64])),
                         r"image.onnx takes input of shape \['batch', 3, 96, 96\]"),
    "wrong-context": (lambda f: _edit_json(f, lambda d: d["tokenizer"].update(context_length=77)),
                      "text.onnx takes input of shape"),
    "wrong-dim": (lambda f: _edit_json(f, lambda d: d.update(embed_dim=512)), "gives 128-d vectors"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_or_mismatched_model_file_is_a_clear_model_error(tmp_path, damage):
    folder = _demo_copy(tmp_path)
    breakage, match = DAMAGE[damage]
    breakage(folder)
    with pytest.raises(ModelError, match=match) as e:
        OnnxModel(folder)
    msg = str(e.value)
    assert "\n" not in msg and MODEL_KEY in msg
    record(f"model file: {damage}", lost=0)


def test_engine_with_a_damaged_model_fails_the_scan_and_keeps_running(tmp_path):
    data_dir = make_data_dir(tmp_path / "data")
    folder = Settings.load(data_dir).models_dir / MODEL_KEY
    shutil.copytree(_demo_copy(tmp_path), folder)
    _flip_a_byte(folder / "image.onnx")
    make_photos(tmp_path / "photos", 3)
    c = engine_client(data_dir)
    try:
        c.start(timeout=TIMEOUT)
        job = c.request("add_folder", {"path": str(tmp_path / "photos")})["job"]
        failed = c.events.wait("job_failed", job, "the scan fails on the damaged model")["data"]
        assert failed["code"] == P.ErrorCode.MODEL_ERROR and "checksum" in failed["message"]
        assert c.request("ping") == {"pong": True}
        assert c.request("status")["files"] == 0
    finally:
        c.close()
