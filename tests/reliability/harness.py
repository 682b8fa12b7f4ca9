"""What the reliability tests share: a real engine process, its events, the durable state on
disk, and a record of every injected fault for the report.

Set ``PHOTOSIFT_RELIABILITY_REPORT=/some/file.jsonl`` and every fault a test injects is
appended there as one JSON line (fault, count, lost, seconds to recover); ``python -m
tests.reliability.report FILE`` turns the file into the table for the closing note.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from engine.service.client import EngineClient
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import Events

TIMEOUT = 60.0


def make_data_dir(path: Path, **settings) -> Path:
    """A data folder with the demo model available and the given settings saved."""
    s = Settings(data_dir=path, model=MODEL_KEY, **settings)
    install_test_model(s)
    s.save()
    return path


def engine_client(data_dir: Path, **kw) -> EngineClient:
    """An EngineClient whose events land in ``client.events`` (not started)."""
    events = Events()
    c = EngineClient(data_dir=data_dir, model=MODEL_KEY, on_event=events,
                     extra_args=["--watch-quiet", "0.2"], stderr_sink=lambda line: None, **kw)  # fmt: skip
    c.events = events
    return c


# -- the durable state, read while no engine runs -------------------------------------------


def integrity(db_path: Path) -> str:
    con = sqlite3.connect(db_path, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def query(db_path: Path, sql: str, args=()) -> list[tuple]:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def vector_count(db_path: Path) -> int:
    """Vectors in the library (0 while the database does not exist yet or is locked)."""
    try:
        return query(db_path, "SELECT COUNT(*) FROM vectors")[0][0]
    except sqlite3.Error:
        return 0


def ann_check(data_dir: Path, scratch: Path) -> list[dict]:
    """Open every space's ANN cache as a restarted engine would, on a copy of the files.

    Returns, per space, whether the cache was caught up or rebuilt (and why); raises
    AssertionError when the index's ids differ from the database's.
    """
    from engine.library import _safe
    from engine.store.ann import AnnIndex
    from engine.store.db import LibraryDB

    out = []
    settings = Settings.load(data_dir)
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    db = LibraryDB(settings.db_path)
    try:
        for space_id, key, dim in db.conn.execute("SELECT id, key, dim FROM spaces"):
            name = f"{_safe(key)}.hnsw"
            for suffix in (".hnsw", ".json"):
                src = settings.ann_dir / (name[: -len(".hnsw")] + suffix)
                if src.exists():
                    shutil.copy2(src, scratch / src.name)
            had_file = (scratch / name).exists()
            ann = AnnIndex.open(
                db, space_id, dim, scratch / name, exact_threshold=settings.exact_threshold
            )
            db_ids = np.sort(np.array([r[0] for r in db.conn.execute(
                "SELECT image_id FROM vectors WHERE space_id=?", (space_id,))], dtype=np.int64))  # fmt: skip
            assert ann.ids().tolist() == db_ids.tolist(), f"ANN and database disagree for {key}"
            assert len(ann) == len(db_ids)
            out.append(
                dict(
                    space=key,
                    mode=ann.mode,
                    had_file=had_file,
                    rebuilt=ann.rebuilt_reason,
                    count=len(ann),
                )
            )
    finally:
        db.close()
    return out


# -- the record for the report ------------------------------------------------------------


def record(
    fault: str, *, injected: int = 1, lost: int = 0, recover_s: float | None = None, **extra
) -> None:
    """Append one injected fault to the report file, when one is asked for."""
    path = os.environ.get("PHOTOSIFT_RELIABILITY_REPORT")
    if not path:
        return
    row = dict(fault=fault, injected=injected, lost=lost, recover_s=recover_s, **extra)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
