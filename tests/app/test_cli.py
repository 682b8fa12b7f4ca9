"""`python -m app` as a program: --help, the screenshot mode, and the benchmark (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from app.sampledata import world_photos

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return dict(os.environ, QT_QPA_PLATFORM="offscreen")


def test_help():
    out = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0
    for opt in ("--data-dir", "--screenshot", "--folder", "--query", "--theme"):
        assert opt in out.stdout


def test_screenshot_mode_indexes_searches_and_saves_a_grab(tmp_path):
    world_photos(tmp_path / "photos", 12)
    shot = tmp_path / "shot.png"
    out = subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(tmp_path / "data"), "--screenshot", str(shot),
         "--folder", str(tmp_path / "photos"), "--query", "a red object", "--size", "1000x700", "--timeout", "90"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "12 results" in out.stderr
    img = QImage(str(shot))
    assert (img.width(), img.height()) == (1000, 700)
    # the window remembered its state in the data dir
    assert json.loads((tmp_path / "data" / "app.json").read_text())["last_query"] == "a red object"


def test_screenshot_of_a_missing_folder_is_refused_at_once(tmp_path):
    missing = tmp_path / "no-photos"
    out = subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(tmp_path / "data"), "--screenshot",
         str(tmp_path / "shot.png"), "--folder", str(missing)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and f"--folder {missing}: no such folder" in out.stderr
    assert not (tmp_path / "shot.png").exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_responsiveness_benchmark(tmp_path):
    """The event loop never stalls > 100 ms while 1,000 photos are indexed; cold start <= 2 s."""
    res = tmp_path / "bench.json"
    out = subprocess.run([sys.executable, "-m", "app.bench", "--photos", "1000", "--json", str(res)], cwd=ROOT,
                         env=_env(), capture_output=True, text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    r = json.loads(res.read_text())
    assert r["stall"]["max_gap_ms"] < 100 and r["stall"]["indexed"] == 1000
    assert r["cold_start"]["shown_ms_max"] <= 2000
