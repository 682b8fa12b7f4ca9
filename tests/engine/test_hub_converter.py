"""A model that comes as open_clip weights needs torch + open_clip to become ONNX. Where they are
missing (the lean installers, a base `pip install`), fetch_model says so before downloading."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import engine.models.hub as hub
from engine.errors import ModelNotAvailable
from engine.models.registry import Registry
from engine.settings import Settings


def test_converter_is_found_where_the_training_extra_is(monkeypatch):
    assert hub.can_convert_open_clip() is True  # the test venv has torch + open_clip
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "open_clip" else real(name, *a),
    )
    assert hub.can_convert_open_clip() is False


@pytest.mark.parametrize("frozen", [False, True])
def test_no_download_when_the_weights_could_not_be_converted(tmp_path, monkeypatch, frozen):
    monkeypatch.setattr(hub, "can_convert_open_clip", lambda: False)

    def no_download(*a, **k):
        raise AssertionError("downloaded weights that cannot be converted here")

    monkeypatch.setattr(hub, "_download", no_download)
    if frozen:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    spec = Registry.load().get("mobileclip2-s0")  # nobody publishes a ready export of it
    with pytest.raises(ModelNotAvailable) as e:
        hub.fetch_model(spec, Settings(data_dir=tmp_path / "data"), offline=False)
    msg = str(e.value)
    assert "mobileclip2-s0" in msg and "conversion to ONNX" in msg
    assert "Import folder" in msg and "models import" in msg
    # a frozen app cannot `pip install`: it points at the installer with training instead
    assert ("pip install" in msg) != frozen and ("-train" in msg) == frozen
