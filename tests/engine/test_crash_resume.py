"""kill -9 during indexing: the database stays intact and indexing resumes without redoing work."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from tests.engine.modelkit import MODEL_KEY
from tests.helpers import make_photos


def _cli(data, *args):
    return [sys.executable, "-m", "engine.cli", "--data-dir", str(data), "--model", MODEL_KEY, *args]


def _vectors(db_path) -> int:
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_kill_9_mid_index_then_resume(tmp_path):
    photos = tmp_path / "photos"
    make_photos(photos, 400)
    data = tmp_path / "data"
    proc = subprocess.Popen(_cli(data, "index", str(photos)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _vectors(data / "library.db") < 16 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "indexing finished before it could be killed"
    con = sqlite3.connect(data / "library.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    files = con.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    con.close()
    assert 16 <= kept < 400 and files == kept  # whole batches only: no file without its vector
    out = subprocess.run(_cli(data, "index", str(photos), "--json"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["embedded"] == 400 - kept and rep["unchanged"] == kept
    assert _vectors(data / "library.db") == 400
    env = dict(os.environ)
    st = subprocess.run(_cli(data, "status", "--json"), capture_output=True, text=True, env=env, timeout=120)
    assert json.loads(st.stdout)["images"] == 400
