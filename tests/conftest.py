"""Shared fixtures: paths to the shared test data, temp libraries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared(sub: str) -> Path:
    """A folder of ../shared/data, or skip the test saying why."""
    p = SHARED_DATA / sub
    if not p.is_dir():
        pytest.skip(f"test data {p} is absent (it lives beside the project, in ../shared/data)")
    return p


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test touches the real user data folder or the real HF cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PHOTOSIFT_HOME", os.fspath(home / "photosift"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", os.fspath(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", os.fspath(home / "hf" / "hub"))
