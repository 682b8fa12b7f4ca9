"""Storage and ANN cache: real SQLite files, real hnswlib files, damage detected not assumed."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from engine.errors import DatabaseError, SchemaTooNew
from engine.store.ann import AnnIndex
from engine.store.db import SCHEMA_VERSION, LibraryDB, NewPhoto


def unit(n, d, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(db, n, d=8, seed=0, start=0):
    fid = db.add_folder("/photos")
    sid = db.space_id("m", d)
    vecs = unit(n, d, seed)
    photos = [
        NewPhoto(f"/photos/{start + i}.jpg", fid, 1, 1, f"h{start + i}", {}, vecs[i]) for i in range(n)
    ]
    seq, added = db.commit_batch(sid, photos)
    return sid, seq, added


def test_schema_created_with_wal_and_version(tmp_path):
    db = LibraryDB(tmp_path / "lib.db")
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db._version() == SCHEMA_VERSION
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_newer_schema_refused_and_untouched(tmp_path):
    path = tmp_path / "lib.db"
    LibraryDB(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match="newer photosift"):
        LibraryDB(path)
    assert path.read_bytes() == before


def test_foreign_database_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes(x)")
    con.commit()
    con.close()
    with pytest.raises(DatabaseError, match="not a photosift database"):
        LibraryDB(path)


def test_batch_is_atomic(tmp_path):
    db = LibraryDB(tmp_path / "lib.db")
    fid = db.add_folder("/p")
    sid = db.space_id("m", 4)
    good = NewPhoto("/p/a.jpg", fid, 1, 1, "ha", {}, unit(1, 4)[0])
    bad = NewPhoto("/p/b.jpg", 9999, 1, 1, "hb", {}, unit(1, 4)[0])  # no such folder
    with pytest.raises(sqlite3.IntegrityError):
        db.commit_batch(sid, [good, bad])
    assert db.vector_count(sid) == 0
    assert db.counts()["files"] == 0
    assert db.space_seq(sid) == 0


def test_copies_share_one_image_and_vector(tmp_path):
    db = LibraryDB(tmp_path / "lib.db")
    sid, _, _ = fill(db, 3, d=4)
    fid = db.folder_id("/photos")
    db.commit_batch(sid, [NewPhoto("/photos/copy.jpg", fid, 1, 1, "h0")])
    assert db.counts()["files"] == 4
    assert db.counts()["images"] == 3
    assert db.image_id_for_path("/photos/copy.jpg") == db.image_id_for_path("/photos/0.jpg")


def test_orphans_gc_tombstones(tmp_path):
    db = LibraryDB(tmp_path / "lib.db")
    sid, seq, added = fill(db, 5, d=4)
    orphans = db.remove_files(["/photos/1.jpg", "/photos/2.jpg"])
    assert len(orphans) == 2
    removed = db.gc_orphans()
    assert {i for _, i in removed} == set(orphans)
    assert db.vector_count(sid) == 3
    assert set(db.tombstones_after(sid, seq)) == set(orphans)


def test_exact_search_matches_brute_force(tmp_path):
    db = LibraryDB(tmp_path / "lib.db")
    sid, _, _ = fill(db, 200, d=16)
    ann = AnnIndex.open(db, sid, 16, tmp_path / "m.hnsw")
    assert ann.mode == "exact" and len(ann) == 200
    q = unit(1, 16, seed=5)[0]
    ids, vecs = next(db.iter_vectors(sid, chunk=1000))
    best = ids[np.argsort(-(vecs @ q))[:10]]
    assert [i for i, _ in ann.search(q, 10)] == best.tolist()


def test_hnsw_recall_and_filters(tmp_path):
    db = LibraryDB(tmp_path / "lib.db")
    sid, _, _ = fill(db, 3000, d=32)
    ann = AnnIndex.open(db, sid, 32, tmp_path / "m.hnsw", exact_threshold=1000)
    assert ann.mode == "hnsw" and len(ann) == 3000
    ids, vecs = next(db.iter_vectors(sid, chunk=10_000))
    qs = unit(50, 32, seed=9)
    recall = []
    for q in qs:
        truth = set(ids[np.argsort(-(vecs @ q))[:10]].tolist())
        recall.append(len(truth & {i for i, _ in ann.search(q, 10)}) / 10)
    assert np.mean(recall) >= 0.95
    allowed = set(ids[::7].tolist())
    got = ann.search(qs[0], 10, allowed)
    assert got and all(i in allowed for i, _ in got)


def _hnsw_lib(tmp_path, n=1500):
    db = LibraryDB(tmp_path / "lib.db")
    sid, _, _ = fill(db, n, d=16)
    path = tmp_path / "m.hnsw"
    ann = AnnIndex.open(db, sid, 16, path, exact_threshold=1000)
    ann.save()
    return db, sid, path


def test_ann_reopened_from_file_without_rebuild(tmp_path):
    db, sid, path = _hnsw_lib(tmp_path)
    ann = AnnIndex.open(db, sid, 16, path, exact_threshold=1000)
    assert ann.rebuilt_reason is None and len(ann) == 1500


def test_an_unchanged_ann_file_is_not_hashed_again(tmp_path, monkeypatch):
    """The file as it was written (size, mtime, inode in its sidecar) is trusted; one rewritten
    in place is hashed again (and a zeroed one is then caught, below)."""
    import os

    from engine.store import ann as ann_mod

    db, sid, path = _hnsw_lib(tmp_path)
    calls = []
    real = ann_mod._file_digest
    monkeypatch.setattr(ann_mod, "_file_digest", lambda p: calls.append(p) or real(p))
    assert AnnIndex.open(db, sid, 16, path, exact_threshold=1000).rebuilt_reason is None
    assert calls == []
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: checked again
    assert AnnIndex.open(db, sid, 16, path, exact_threshold=1000).rebuilt_reason is None
    assert calls == [path]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
        (lambda p: p.unlink(), "missing"),
        (lambda p: p.with_suffix(".json").unlink(), "sidecar"),
        (lambda p: p.write_bytes(b"\0" * p.stat().st_size), "checksum"),
    ],
    ids=["truncated", "deleted", "no-sidecar", "zeroed"],
)
def test_damaged_ann_detected_and_rebuilt(tmp_path, damage, reason):
    db, sid, path = _hnsw_lib(tmp_path)
    damage(path)
    ann = AnnIndex.open(db, sid, 16, path, exact_threshold=1000)
    assert ann.rebuilt_reason is not None and reason in ann.rebuilt_reason
    assert len(ann) == 1500
    assert ann.ids().tolist() == sorted(next(db.iter_vectors(sid, chunk=10_000))[0].tolist())


def test_stale_ann_catches_up_with_adds_and_deletes(tmp_path):
    db, sid, path = _hnsw_lib(tmp_path)
    # The database moves on after the index was saved (a crash before the next save).
    _, _, added = fill(db, 100, d=16, seed=3, start=5000)
    db.remove_files([f"/photos/{i}.jpg" for i in range(10)])
    db.gc_orphans()
    ann = AnnIndex.open(db, sid, 16, path, exact_threshold=1000)
    assert ann.rebuilt_reason is None  # caught up, not rebuilt
    assert len(ann) == 1500 + 100 - 10
    assert ann.ids().tolist() == sorted(next(db.iter_vectors(sid, chunk=10_000))[0].tolist())


def test_new_content_at_same_path_orphans_the_old_image(tmp_path):
    db = LibraryDB(tmp_path / "lib.db")
    sid, _, _ = fill(db, 2, d=4)
    old = db.image_id_for_path("/photos/0.jpg")
    fid = db.folder_id("/photos")
    db.commit_batch(sid, [NewPhoto("/photos/0.jpg", fid, 2, 2, "new-content", {}, unit(1, 4, 7)[0])])
    assert db.image_id_for_path("/photos/0.jpg") != old
    removed = db.gc_orphans()
    assert [i for _, i in removed] == [old]
    assert db.vector_count(sid) == 2
