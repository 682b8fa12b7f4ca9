"""The frozen app starts its own executable as the engine and as torch jobs: each such child
must be told it is an independent program (PyInstaller's PYINSTALLER_RESET_ENVIRONMENT), or its
bootloader takes the parent's setup for its own and the engine cannot load numpy's libraries
(seen in the Linux bundle's smoke test)."""

from __future__ import annotations

import sys

import pytest

from engine.child import child_env, frozen_self


def test_a_frozen_app_starts_itself_as_an_independent_program(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert frozen_self({})["PYINSTALLER_RESET_ENVIRONMENT"] == "1"
    assert child_env()["PYINSTALLER_RESET_ENVIRONMENT"] == "1"


def test_from_source_nothing_is_added(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert "PYINSTALLER_RESET_ENVIRONMENT" not in frozen_self({})


def test_the_engine_client_passes_it_to_the_engine(monkeypatch, tmp_path):
    import subprocess

    from engine.service import client

    seen = {}

    class Stop(Exception):
        pass

    def popen(cmd, **kw):
        seen.update(kw["env"])
        raise Stop

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(subprocess, "Popen", popen)
    c = client.EngineClient(["photosift", "--engine"], data_dir=tmp_path)
    with pytest.raises(Stop):
        c.start()
    assert seen.get("PYINSTALLER_RESET_ENVIRONMENT") == "1"
