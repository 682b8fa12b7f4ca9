"""The `photosift` command line, run as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.engine.modelkit import MODEL_KEY
from tests.helpers import make_photos

COMMANDS = ["", "index", "search", "similar", "status", "models", "bench"]


def run(*args, data=None, check=True):
    cmd = [sys.executable, "-m", "engine.cli"]
    if data is not None:
        cmd += ["--data-dir", str(data), "--model", MODEL_KEY]
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.mark.parametrize("command", COMMANDS)
def test_help_everywhere(command):
    p = run(*([command] if command else []), "--help")
    assert "usage: photosift" in p.stdout


def test_index_search_similar_status_json(tmp_path):
    photos = make_photos(tmp_path / "photos", 10)
    data = tmp_path / "data"
    rep = json.loads(run("index", str(tmp_path / "photos"), "--json", data=data).stdout)
    assert rep["embedded"] == 10 and rep["failed"] == 0
    hits = json.loads(run("search", "a colourful photo", "-k", "5", "--json", data=data).stdout)
    assert len(hits) == 5 and all(h["path"].startswith(str(tmp_path)) for h in hits)
    sim = json.loads(run("similar", str(photos[3]), "-k", "3", "--json", data=data).stdout)
    assert sim[0]["path"] == str(photos[3])
    st = json.loads(run("status", "--json", data=data).stdout)
    assert st["images"] == 10 and st["folders_detail"][0]["online"] == 1


def test_errors_are_one_clear_line(tmp_path):
    data = tmp_path / "data"
    make_photos(tmp_path / "photos", 2)
    run("index", str(tmp_path / "photos"), data=data)
    p = run("search", "   ", data=data, check=False)
    assert p.returncode == 1
    assert p.stderr.startswith("photosift: ") and "Traceback" not in p.stderr
    p = run("similar", str(tmp_path / "nope.jpg"), data=data, check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr
    p = run("index", str(tmp_path / "missing-folder"), data=data, check=False)
    assert p.returncode == 1 and "is not a folder" in p.stderr


def test_models_list(tmp_path):
    rows = json.loads(run("--data-dir", str(tmp_path), "models", "list", "--json").stdout)
    keys = {r["key"]: r for r in rows}
    assert {MODEL_KEY, "vit-b-32-256-datacomp", "mobileclip2-s0", "vit-b-16-siglip2-256"} <= set(
        keys
    )
    assert keys[MODEL_KEY]["here"] and not keys["vit-b-32-256-datacomp"]["here"]


def test_models_quantize_then_index_int8(tmp_path):
    data = tmp_path / "data"
    out = run("--data-dir", str(data), "models", "quantize", MODEL_KEY).stdout
    assert "image.int8.onnx" in out
    assert (data / "models" / MODEL_KEY / "image.int8.onnx").is_file()
    make_photos(tmp_path / "photos", 4)
    rep = json.loads(run("index", str(tmp_path / "photos"), "--int8", "--json", data=data).stdout)
    assert rep["embedded"] == 4
    from engine.library import Library
    from engine.settings import Settings

    lib = Library(Settings(data_dir=data, precision="int8"), model_key=MODEL_KEY)
    assert lib.model().int8 and lib.model().folder == data / "models" / MODEL_KEY
    assert not lib.model().int8_stale
    lib.close()


def test_an_int8_tower_made_with_other_settings_is_not_used(tmp_path):
    """An older photosift's int8 file (8-bit weights: wrong on CPUs without VNNI) gives way
    to the fp32 tower until `models quantize` remakes it."""
    from engine.library import Library
    from engine.models.quantize import quantize_int8
    from engine.settings import Settings

    data = tmp_path / "data"
    run("--data-dir", str(data), "models", "quantize", MODEL_KEY)
    folder = data / "models" / MODEL_KEY
    quantize_int8(folder / "image.onnx", folder / "image.int8.onnx", reduce_range=False)
    lib = Library(Settings(data_dir=data, precision="int8"), model_key=MODEL_KEY)
    assert not lib.model().int8 and lib.model().int8_stale
    lib.close()
    make_photos(tmp_path / "photos", 2)
    p = run("index", str(tmp_path / "photos"), "--int8", data=data)
    assert f"photosift models quantize {MODEL_KEY}" in p.stderr
    run("--data-dir", str(data), "models", "quantize", MODEL_KEY)  # made again: used again
    lib = Library(Settings(data_dir=data, precision="int8"), model_key=MODEL_KEY)
    assert lib.model().int8 and not lib.model().int8_stale
    lib.close()


def test_models_list_shows_the_recommended_model_first(tmp_path):
    rows = json.loads(run("--data-dir", str(tmp_path), "models", "list", "--json").stdout)
    assert [r["key"] for r in rows if r["recommended"]] == ["vit-b-32-256-datacomp"]
    assert rows[0]["key"] == "vit-b-32-256-datacomp" and rows[0]["size_mb"] > 0
    first = run("--data-dir", str(tmp_path), "models", "list").stdout.splitlines()[0]
    assert "vit-b-32-256-datacomp" in first and "[recommended]" in first and "MB" in first
