"""A model file is hashed once, then trusted while its size, mtime and inode stay the same; a
changed file is hashed again and refused if it differs; the app's own models are never written."""

from __future__ import annotations

import os
import shutil

import pytest

from engine.errors import ModelError
from engine.models import filecheck
from engine.models.filecheck import CHECKED_FILE, FileChecks
from engine.models.registry import file_sha256, resources_dir


def _folder(tmp_path, data=b"weights" * 1000):
    (tmp_path / "w.onnx").write_bytes(data)
    return {"w.onnx": {"sha256": file_sha256(tmp_path / "w.onnx"), "size": len(data)}}


def test_hashed_once_then_trusted_while_unchanged(tmp_path, monkeypatch):
    files = _folder(tmp_path)
    calls = []
    monkeypatch.setattr(filecheck, "file_sha256", lambda p: calls.append(p) or file_sha256(p))
    FileChecks(tmp_path, "m", files).check("w.onnx")
    FileChecks(tmp_path, "m", files).check("w.onnx")  # another process: reads the record
    assert len(calls) == 1 and (tmp_path / CHECKED_FILE).is_file()


def test_a_changed_file_is_hashed_again_and_refused(tmp_path):
    files = _folder(tmp_path)
    FileChecks(tmp_path, "m", files).check("w.onnx")
    data = bytearray((tmp_path / "w.onnx").read_bytes())
    data[10] ^= 1  # same size: only the hash can tell
    (tmp_path / "w.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="w.onnx does not match its checksum"):
        FileChecks(tmp_path, "m", files).check("w.onnx")
    # put back by copying another file over it: a new inode, hashed again, accepted
    (tmp_path / "good").write_bytes(b"weights" * 1000)
    os.replace(tmp_path / "good", tmp_path / "w.onnx")
    FileChecks(tmp_path, "m", files).check("w.onnx")


def test_the_apps_own_models_are_never_written(tmp_path, monkeypatch):
    fake_resources = tmp_path / "resources"
    model = fake_resources / "demo"
    model.mkdir(parents=True)
    files = _folder(model)
    monkeypatch.setattr("engine.models.registry.resources_dir", lambda: fake_resources)
    FileChecks(model, "demo", files).check("w.onnx")
    assert not (model / CHECKED_FILE).exists()
    assert not (resources_dir() / "demo" / CHECKED_FILE).exists()
    shutil.rmtree(model)
