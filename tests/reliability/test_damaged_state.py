"""Damaged or hostile state on disk: the engine recovers, or refuses clearly and touches nothing.

ANN cache truncated, deleted or garbage; a database from schema 1 (a frozen SQL fixture, so
this keeps testing migration after every schema bump) and a failed migration; a database
from a newer photosift; a second engine, a command-line run and a foreign writer on the same
library; a read-only data folder; the disk filling up mid-scan.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import DatabaseError, DiskFull
from engine.index.scan import file_hash
from engine.library import Library
from engine.models.hub import full_registry
from engine.search import Query
from engine.service import protocol as P
from engine.service.client import EngineError
from engine.settings import Settings
from engine.store import db as dbmod
from tests.engine.modelkit import MODEL_KEY
from tests.helpers import make_photos, wait_for
from tests.reliability.harness import (
    TIMEOUT,
    ann_check,
    engine_client,
    integrity,
    make_data_dir,
    query,
    record,
    vector_count,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_V1 = Path(__file__).parent / "fixtures" / "schema_v1.sql"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def indexed_library(tmp_path: Path, n: int = 80, **settings) -> tuple[Path, list[Path]]:
    """A data folder whose library holds `n` photos, written by a real engine that then stopped."""
    data_dir = make_data_dir(tmp_path / "data", **settings)
    photos = make_photos(tmp_path / "photos", n)
    c = engine_client(data_dir)
    c.start(timeout=TIMEOUT)
    try:
        job = c.request("add_folder", {"path": str(tmp_path / "photos")})["job"]
        c.events.wait("job_done", job, "the photos are indexed")
    finally:
        c.close()
    assert vector_count(data_dir / "library.db") == n
    return data_dir, photos


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """One library of 80 photos (with an HNSW file: threshold 60), indexed once per module."""
    return indexed_library(tmp_path_factory.mktemp("indexed"), n=80, exact_threshold=60)


def copy_of(indexed, tmp_path: Path) -> tuple[Path, list[Path]]:
    data_dir, photos = indexed
    shutil.copytree(data_dir, tmp_path / "data")
    return tmp_path / "data", photos


# -- the ANN cache ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 3]),
        lambda p: p.unlink(),
        lambda p: p.write_bytes(os.urandom(p.stat().st_size)),
        lambda p: p.with_suffix(".json").write_text('{"format": 1, "dim": 3'),
    ],
    ids=["truncated", "deleted", "garbage", "bad-sidecar"],
)
def test_damaged_ann_file_is_rebuilt_by_the_engine(indexed, tmp_path, damage, request):
    data_dir, photos = copy_of(indexed, tmp_path)
    ann_files = list((data_dir / "ann").glob("*.hnsw"))
    assert len(ann_files) == 1, "an HNSW file should have been saved (80 photos > threshold 60)"
    damage(ann_files[0])
    c = engine_client(data_dir)
    t0 = time.monotonic()
    c.start(timeout=TIMEOUT)
    try:
        hits = c.request("search", {"like": [str(photos[17])], "k": 3})["hits"]
        recover = time.monotonic() - t0
        assert hits[0]["path"] == str(photos[17])
        assert len(c.request("search", {"text": "a photo", "k": 100})["hits"]) == 80
    finally:
        c.close()
    after = ann_check(data_dir, tmp_path / "check")  # the engine saved a sound cache again
    assert after[0]["rebuilt"] is None and after[0]["count"] == 80 and after[0]["mode"] == "hnsw"
    record(
        f"ANN file {request.node.callspec.id}",
        lost=80 - after[0]["count"],
        recover_s=round(recover, 3),
    )


# -- schema versions -------------------------------------------------------------------------


def v1_library(tmp_path: Path) -> tuple[Settings, Path, bytes]:
    """A schema-1 database (from the frozen fixture) that already indexed one real photo."""
    settings = Settings.load(make_data_dir(tmp_path / "data"))
    photo = make_photos(tmp_path / "photos", 1)[0]
    spec = full_registry(settings).get(MODEL_KEY)
    vec = np.random.default_rng(0).standard_normal(spec.embed_dim).astype(np.float32)
    vec /= np.linalg.norm(vec)
    st = photo.stat()
    con = sqlite3.connect(settings.db_path)
    con.executescript(SCHEMA_V1.read_text())
    con.executescript(
        f"""
        INSERT INTO meta VALUES('schema_version', '1');
        INSERT INTO folders(id, path, added_at) VALUES(1, '{tmp_path / "photos"}', 1.0);
        INSERT INTO images(id, hash, width, height, format, added_at)
            VALUES(1, '{file_hash(str(photo))}', 64, 48, 'JPEG', 1.0);
        INSERT INTO files(path, folder_id, image_id, size, mtime_ns, ext)
            VALUES('{photo}', 1, 1, {st.st_size}, {st.st_mtime_ns}, 'jpg');
        INSERT INTO spaces(id, key, dim, seq) VALUES(1, '{spec.space}', {spec.embed_dim}, 1);
        """
    )
    con.execute("INSERT INTO vectors VALUES(1, 1, ?, 1)", (vec.tobytes(),))
    con.commit()
    con.close()
    return settings, photo, vec.tobytes()


def test_schema_1_database_is_migrated_and_keeps_its_photos(tmp_path):
    settings, photo, vec = v1_library(tmp_path)
    lib = Library(settings, model_key=MODEL_KEY)
    try:
        assert lib.db._version() == dbmod.SCHEMA_VERSION
        assert lib.db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rep = lib.scan()
        assert (rep.unchanged, rep.embedded, rep.total) == (1, 0, 0)  # not embedded again
        iid = lib.db.image_id_for_path(str(photo))
        assert lib.db.vectors_for(lib.space_id, [iid])[iid].tobytes() == vec
        assert lib.search(Query(like=[str(photo)], k=1))[0].path == str(photo)
    finally:
        lib.close()
    record("database of schema 1 (older)", lost=0)


def test_a_failing_migration_leaves_the_old_database_as_it_was(tmp_path, monkeypatch):
    settings, photo, _ = v1_library(tmp_path)
    before = digest(settings.db_path)
    migrations = dict(dbmod.MIGRATIONS)
    migrations[dbmod.SCHEMA_VERSION] = "CREATE TABLE half_done(x); THIS IS NOT SQL"
    monkeypatch.setattr(dbmod, "MIGRATIONS", migrations)
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", dbmod.SCHEMA_VERSION + 1)
    with pytest.raises(DatabaseError):
        dbmod.LibraryDB(settings.db_path)
    assert digest(settings.db_path) == before
    assert query(settings.db_path, "SELECT value FROM meta WHERE key='schema_version'") == [("1",)]
    assert query(settings.db_path, "SELECT path FROM files") == [(str(photo),)]
    record("migration fails half way", lost=0)


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_database_from_a_newer_photosift_is_refused_untouched(tmp_path, journal):
    data_dir = make_data_dir(tmp_path / "data")
    db = data_dir / "library.db"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA journal_mode={journal}")
    con.executescript(SCHEMA_V1.read_text())
    con.execute("INSERT INTO meta VALUES('schema_version', '999')")
    con.execute("CREATE TABLE from_the_future(x)")
    con.commit()
    con.close()
    before = {p.name: digest(p) for p in data_dir.glob("library.db*")}
    c = engine_client(data_dir)
    hello = c.start(timeout=TIMEOUT)
    try:
        assert "newer photosift" in hello["library_error"] and "999" in hello["library_error"]
        with pytest.raises(EngineError) as e:
            c.request("add_folder", {"path": str(tmp_path)})
        assert (
            e.value.code == P.ErrorCode.LIBRARY_UNAVAILABLE and "newer photosift" in e.value.message
        )
        assert c.request("ping") == {"pong": True}
    finally:
        c.close()
    assert {p.name: digest(p) for p in data_dir.glob("library.db*")} == before
    record("database from a newer version", lost=0)


# -- more than one process -----------------------------------------------------------------


def test_second_engine_is_refused_and_a_dead_ones_lock_is_not_stale(indexed, tmp_path):
    data_dir, photos = copy_of(indexed, tmp_path)
    a = engine_client(data_dir)
    a.start(timeout=TIMEOUT)
    b = engine_client(data_dir)
    try:
        hello = b.start(timeout=TIMEOUT)
        assert "in use" in hello["library_error"] and str(a.pid) in hello["library_error"]
        with pytest.raises(EngineError) as e:
            b.request("status")
        assert e.value.code == P.ErrorCode.LIBRARY_UNAVAILABLE
        b.close()
        # The command line is refused the same way, and says why in one line.
        out = subprocess.run(
            [sys.executable, "-m", "engine.cli", "--data-dir", str(data_dir), "index", str(photos[0].parent)],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
        )  # fmt: skip
        assert (
            out.returncode == 1
            and "in use" in out.stderr
            and len(out.stderr.strip().splitlines()) == 1
        )
        # The first engine never noticed.
        make_photos(tmp_path / "more", 8, seed=9)
        job = a.request("add_folder", {"path": str(tmp_path / "more")})["job"]
        assert a.events.wait("job_done", job)["data"]["embedded"] == 8
        # Killed, it leaves no lock behind: the app's restart opens the library at once.
        os.kill(a.pid, 9)
        wait_for(lambda: not a.alive, "the first engine is gone")
        t0 = time.monotonic()
        hello = b.start(timeout=TIMEOUT)
        recover = time.monotonic() - t0
        assert hello["library_error"] is None
        assert b.request("status")["files"] == 88
    finally:
        a.close()
        b.close()
    assert integrity(data_dir / "library.db") == "ok"
    record("second engine on the same library", injected=2, lost=0)
    record("restart after kill -9 (stale lock)", lost=0, recover_s=round(recover, 3))


def test_a_foreign_writer_holding_the_database_only_delays_indexing(tmp_path):
    """A backup tool or a curious user holds a write lock on library.db for a while."""
    settings = Settings.load(make_data_dir(tmp_path / "data", batch_size=4))
    make_photos(tmp_path / "photos", 24)
    lib = Library(settings, model_key=MODEL_KEY)
    lib.add_folder(tmp_path / "photos")
    lib.model()
    other = sqlite3.connect(settings.db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # every write by the library now has to wait
    release = threading.Timer(1.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        rep = lib.scan()
    finally:
        release.join()
        other.close()
        lib.close()
    assert rep.embedded == 24 and vector_count(settings.db_path) == 24
    record("foreign write lock on library.db (1.5 s)", lost=0)


# -- read-only folder, full disk -------------------------------------------------------------


def _read_only_engine_command(data_dir: Path) -> list[str]:
    """The engine, seeing `data_dir` read-only: a read-only bind mount when we are root
    (root ignores permission bits), else plain permissions."""
    if os.geteuid() != 0:
        for p in [data_dir, *data_dir.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        return [sys.executable, "-m", "engine.service.server"]
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{data_dir}' '{data_dir}'"],
                           capture_output=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {probe.stderr.decode().strip()}")
    return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(data_dir),
            sys.executable, "-m", "engine.service.server"]  # fmt: skip


def test_read_only_data_folder_is_refused_clearly_and_left_alone(indexed, tmp_path):
    data_dir, _ = copy_of(indexed, tmp_path)
    before = {p.name: digest(p) for p in data_dir.iterdir() if p.is_file()}
    c = engine_client(data_dir)
    c.command = _read_only_engine_command(data_dir) + c.command[3:]
    try:
        hello = c.start(timeout=TIMEOUT)
        assert (
            "cannot be written" in hello["library_error"]
            and str(data_dir) in hello["library_error"]
        )
        with pytest.raises(EngineError) as e:
            c.request("status")
        assert e.value.code == P.ErrorCode.LIBRARY_UNAVAILABLE
        assert c.request("ping") == {"pong": True}
    finally:
        c.close()
        for p in [data_dir, *data_dir.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert {p.name: digest(p) for p in data_dir.iterdir() if p.is_file()} == before
    record("read-only data folder", lost=0)


class _DiskLimit:
    """SQLite's max_page_count on every library connection: the disk 'fills up' at `pages`."""

    def __init__(self, monkeypatch):
        self.pages: int | None = None
        self.conns: list[sqlite3.Connection] = []
        original = dbmod.LibraryDB.__init__

        def init(db, *a, **kw):
            original(db, *a, **kw)
            self.conns.append(db.conn)
            if self.pages is not None:
                db.conn.execute(f"PRAGMA max_page_count={self.pages}")

        monkeypatch.setattr(dbmod.LibraryDB, "__init__", init)

    def set(self, pages: int) -> None:
        self.pages = pages
        for c in self.conns:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed
                c.execute(f"PRAGMA max_page_count={pages}")


def test_disk_full_mid_scan_keeps_every_committed_batch_and_resumes(tmp_path, monkeypatch):
    from engine.service.server import Engine
    from tests.helpers import Events

    limit = _DiskLimit(monkeypatch)
    data_dir = make_data_dir(tmp_path / "data", batch_size=4)
    make_photos(tmp_path / "a", 12, seed=1)
    make_photos(tmp_path / "b", 300, seed=2)
    events = Events()

    class Out:
        def write(self, data):
            import json

            msg = json.loads(data)
            events(msg if "event" in msg else dict(event="reply", data=msg))

        def flush(self):
            pass

    eng = Engine(Settings.load(data_dir), MODEL_KEY, Out())

    def ask(rid, method, params=None):
        eng.handle_line(P.encode(P.request(rid, method, params or {})))
        return wait_for(lambda: [e["data"] for e in events.of("reply") if e["data"].get("id") == rid],
                        f"a reply to {method}")[0]  # fmt: skip

    try:
        ask(1, "hello", {"protocol": P.PROTOCOL_VERSION})
        job = ask(2, "add_folder", {"path": str(tmp_path / "a")})["result"]["job"]
        events.wait("job_done", job)
        db = data_dir / "library.db"
        pages = query(db, "PRAGMA page_count")[0][0]
        limit.set(pages + 6)  # room for a few batches of the next folder, not for all of them
        job = ask(3, "add_folder", {"path": str(tmp_path / "b")})["result"]["job"]
        failed = events.wait("job_failed", job, "the scan stops when the disk is full")["data"]
        assert (
            failed["code"] == P.ErrorCode.DATABASE_ERROR
            and "disk" in failed["message"]
            and "full" in failed["message"]
        )
        assert ask(4, "ping")["result"] == {"pong": True}  # the engine runs on
        kept = vector_count(db)
        files = query(db, "SELECT COUNT(*) FROM files")[0][0]
        assert 12 < kept < 312 and files == kept  # whole batches only; folder a untouched
        assert integrity(db) == "ok"
        ann_ids = sorted(eng.lib.ann().ids().tolist())
        assert ann_ids == sorted(r[0] for r in query(db, "SELECT image_id FROM vectors"))
        # Space is freed: the next scan picks up where the full disk stopped it.
        t0 = time.monotonic()
        limit.set(1 << 30)
        job = ask(5, "scan")["result"]["job"]
        done = events.wait("job_done", job, "the scan after space is freed")["data"]
        recover = time.monotonic() - t0
        assert done["embedded"] == 312 - kept and done["unchanged"] == kept
    finally:
        eng.close()
    assert vector_count(db) == 312 and integrity(db) == "ok"
    record("disk full during a batch write", lost=0, recover_s=round(recover, 3))


def test_disk_full_is_a_typed_error_and_the_batch_rolls_back(tmp_path, monkeypatch):
    limit = _DiskLimit(monkeypatch)
    db = dbmod.LibraryDB(tmp_path / "lib.db")
    fid = db.add_folder("/p")
    sid = db.space_id("m", 256)
    vecs = np.random.default_rng(0).standard_normal((400, 256)).astype(np.float32)
    first = [dbmod.NewPhoto(f"/p/{i}.jpg", fid, 1, 1, f"h{i}", {}, vecs[i]) for i in range(10)]
    db.commit_batch(sid, first)
    limit.set(db.conn.execute("PRAGMA page_count").fetchone()[0] + 2)
    big = [dbmod.NewPhoto(f"/p/{i}.jpg", fid, 1, 1, f"h{i}", {}, vecs[i]) for i in range(10, 400)]
    with pytest.raises(DiskFull, match="full"):
        db.commit_batch(sid, big)
    assert db.vector_count(sid) == 10 and db.counts()["files"] == 10 and db.space_seq(sid) == 1
    assert not db.conn.in_transaction
    db.commit_batch(sid, big[:1])  # the connection still works: a smaller write fits
    assert db.vector_count(sid) == 11
    db.close()


def test_cli_says_the_data_folder_is_read_only(tmp_path):
    if os.geteuid() == 0:
        cmd = _read_only_engine_command(tmp_path)[:-3] + [sys.executable, "-m", "engine.cli"]
    else:
        tmp_path.chmod(0o555)
        cmd = [sys.executable, "-m", "engine.cli"]
    data_dir = tmp_path
    try:
        out = subprocess.run([*cmd, "--data-dir", str(data_dir), "status"], capture_output=True, text=True,
                             timeout=TIMEOUT, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    finally:
        tmp_path.chmod(0o755)
    assert out.returncode == 1 and "cannot be written" in out.stderr, out.stderr
    assert not list(data_dir.glob("library.db*"))


def test_copying_a_library_elsewhere_keeps_it_usable(indexed, tmp_path):
    """Users move data folders (new disk, backup restore), lock file and all."""
    moved, photos = copy_of(indexed, tmp_path)
    c = engine_client(moved)
    try:
        assert c.start(timeout=TIMEOUT)["library_error"] is None
        assert c.request("search", {"like": [str(photos[3])], "k": 1})["hits"][0]["path"] == str(
            photos[3]
        )
    finally:
        c.close()


def test_disk_full_while_saving_the_ann_cache_loses_nothing(tmp_path, monkeypatch):
    """The HNSW file cannot be written (ENOSPC): the scan still succeeds, the cache is rebuilt."""
    import errno

    from engine.store.ann import AnnIndex

    settings = Settings.load(make_data_dir(tmp_path / "data", exact_threshold=20))
    make_photos(tmp_path / "photos", 40)

    def full(self):
        (self.path.parent).mkdir(parents=True, exist_ok=True)
        self.path.with_name(self.path.name + ".tmp").write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(AnnIndex, "save", full)
    lib = Library(settings, model_key=MODEL_KEY)
    lib.add_folder(tmp_path / "photos")
    rep = lib.scan()
    lib.close()
    assert rep.embedded == 40 and vector_count(settings.db_path) == 40
    monkeypatch.undo()
    check = ann_check(settings.data_dir, tmp_path / "check")
    assert check[0]["count"] == 40 and check[0]["rebuilt"] == "index file missing"
    record("disk full while saving the ANN file", lost=0)
