"""The library database: SQLite is the source of truth.

Photos are identified by their content hash (``images``); paths point at them
(``files``). Vectors are stored per (image, image space): every model that
shares an image tower shares one space, so a fine-tuned text side needs no
re-indexing. Every indexing batch is one transaction, and every change to a
space's vectors bumps that space's ``seq``, which lets the ANN cache tell how
far behind it is (see engine.store.ann).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatabaseError, DiskFull, SchemaTooNew
from ..photos.formats import PAIR_EXTENSIONS, RAW_EXTENSIONS

SCHEMA_VERSION = 4

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE folders (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    added_at REAL NOT NULL,
    online INTEGER NOT NULL DEFAULT 1,
    poll INTEGER NOT NULL DEFAULT 0,      -- watch by polling (network shares)
    last_scan REAL
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    hash TEXT UNIQUE NOT NULL,            -- blake2b-128 of the file's bytes
    width INTEGER, height INTEGER,        -- upright, full resolution
    format TEXT,
    taken_at TEXT,                        -- ISO 8601 from EXIF, NULL if unknown
    camera_make TEXT, camera_model TEXT,
    gps_lat REAL, gps_lon REAL,
    added_at REAL NOT NULL,
    orphan_since REAL                     -- set when its last file went away
);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id),
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ext TEXT NOT NULL
);
CREATE INDEX files_image ON files(image_id);
CREATE INDEX files_folder ON files(folder_id);
CREATE TABLE failures (
    path TEXT PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    size INTEGER, mtime_ns INTEGER,       -- a failed file is retried only once it changes
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE spaces (
    id INTEGER PRIMARY KEY,
    key TEXT UNIQUE NOT NULL,             -- image-tower identity (ModelSpec.space)
    dim INTEGER NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0        -- bumped by every change to this space's vectors
);
CREATE TABLE vectors (
    space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    vec BLOB NOT NULL,                    -- float32, L2-normalised
    seq INTEGER NOT NULL,
    PRIMARY KEY (space_id, image_id)
) WITHOUT ROWID;
CREATE INDEX vectors_seq ON vectors(space_id, seq);
CREATE TABLE tombstones (               -- vectors removed, so the ANN cache can catch up
    space_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (space_id, image_id)
) WITHOUT ROWID;
"""

# Version 2: tag vocabularies and tags (engine.tags.vocab, engine.tags.tagstore, engine.tags.tagging).
# Answers (confirmed/rejected) are keyed by content hash, not image id or model, so they
# survive re-indexing, garbage collection of a photo that comes back, and model switches.
# Automatic tags are per model (its text side decides them) and are a derived cache of
# the stored vectors: re-tagging rewrites them from vectors alone.
_SCHEMA_V2_TAGS = """
CREATE TABLE vocabularies (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    templates TEXT NOT NULL,              -- JSON list of prompt templates with one {}
    threshold REAL,                       -- default probability threshold (NULL: the family default)
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 1    -- bumped by every edit (a re-tag in flight notices)
);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    vocab_id INTEGER NOT NULL REFERENCES vocabularies(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key TEXT NOT NULL,                    -- case-folded name: unique within the vocabulary
    synonyms TEXT NOT NULL DEFAULT '[]',  -- JSON list
    prompts TEXT NOT NULL DEFAULT '[]',   -- JSON list, used instead of the templates
    threshold REAL,                       -- fixed threshold from the vocabulary file
    position INTEGER NOT NULL,
    UNIQUE (vocab_id, key)
);
CREATE INDEX labels_vocab ON labels(vocab_id, position);
CREATE TABLE tag_models (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE label_state (                -- per label and model
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    model_id INTEGER NOT NULL REFERENCES tag_models(id) ON DELETE CASCADE,
    text_sig TEXT,                        -- hash of the prompt texts text_vec was made from
    text_vec BLOB,                        -- float32 mean of the prompts' text vectors, unit length
    calibrated REAL,                      -- threshold fitted to the answers (NULL: none yet)
    user_threshold REAL,                  -- set by the user (slider), wins over everything
    PRIMARY KEY (label_id, model_id)
) WITHOUT ROWID;
CREATE TABLE tag_answers (
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    image_hash TEXT NOT NULL,             -- images.hash: identity by content
    state INTEGER NOT NULL CHECK (state IN (1, -1)),  -- 1 confirmed, -1 rejected
    at REAL NOT NULL,
    PRIMARY KEY (label_id, image_hash)
) WITHOUT ROWID;
CREATE INDEX tag_answers_hash ON tag_answers(image_hash);
CREATE TABLE auto_tags (                  -- probability reached the threshold (model's view)
    label_id INTEGER NOT NULL,            -- no foreign keys: a re-tag writes 100,000s of rows and
    model_id INTEGER NOT NULL,            -- per-row key checks would triple the cost; the
    image_id INTEGER NOT NULL,            -- triggers below clean up instead
    PRIMARY KEY (label_id, model_id, image_id)
) WITHOUT ROWID;
CREATE INDEX auto_tags_image ON auto_tags(image_id, model_id);
CREATE TRIGGER auto_tags_label_gone AFTER DELETE ON labels BEGIN
    DELETE FROM auto_tags WHERE label_id = old.id;
END;
CREATE TRIGGER auto_tags_image_gone AFTER DELETE ON images BEGIN
    DELETE FROM auto_tags WHERE image_id = old.id;
END;
CREATE TABLE tag_runs (                   -- which vocabulary version a model's automatic tags reflect
    vocab_id INTEGER NOT NULL REFERENCES vocabularies(id) ON DELETE CASCADE,
    model_id INTEGER NOT NULL REFERENCES tag_models(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (vocab_id, model_id)
) WITHOUT ROWID
"""

# Version 3: a vocabulary may leave its labels to the user's answers alone (auto = 0), e.g.
# keywords imported from other programs: no automatic tags for them (engine.tags.tagging).
# The "Keywords" vocabulary that keyword import (engine.xmp.tags) made under v2 becomes one,
# and its automatic tags go (under every model), so an XMP export no longer spreads them.
_SCHEMA_V3_VOCAB_AUTO = """
ALTER TABLE vocabularies ADD COLUMN auto INTEGER NOT NULL DEFAULT 1 CHECK (auto IN (0, 1));
UPDATE vocabularies SET auto = 0 WHERE name = 'Keywords';
DELETE FROM auto_tags WHERE label_id IN
    (SELECT l.id FROM labels l JOIN vocabularies v ON v.id = l.vocab_id WHERE v.auto = 0)
"""

# Version 4: camera RAW files. A file's stem (its path without the extension) finds the
# "RAW + JPEG" pairs cameras write (IMG_1.CR2 beside IMG_1.JPG; engine.pairs). A virtual
# generated column costs no storage and no change to any write; its index makes the pair
# lookup one index probe per RAW file, and the index on ext finds the RAW files.
_SCHEMA_V4_STEMS = """
ALTER TABLE files ADD COLUMN stem TEXT GENERATED ALWAYS AS
    (CASE WHEN ext = '' THEN path ELSE substr(path, 1, length(path) - length(ext) - 1) END) VIRTUAL;
CREATE INDEX files_stem ON files(stem);
CREATE INDEX files_ext ON files(ext)
"""

# Migrations from version N to N+1, each run inside one transaction.
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V2_TAGS, 2: _SCHEMA_V3_VOCAB_AUTO, 3: _SCHEMA_V4_STEMS}


@dataclass
class FileRow:
    path: str
    image_id: int
    size: int
    mtime_ns: int


@dataclass
class NewPhoto:
    """One photo ready to be written: its file, its content and (if embedded) its vector."""

    path: str
    folder_id: int
    size: int
    mtime_ns: int
    hash: str
    meta: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None  # None: the hash already has a vector in this space


@dataclass
class Failure:
    path: str
    folder_id: int
    size: int | None
    mtime_ns: int | None
    reason: str


def _ext(path: str) -> str:
    dot = path.rfind(".")
    return path[dot + 1 :].lower() if dot > path.rfind("/") and dot > path.rfind("\\") else ""


class LibraryDB:
    """One connection to the library database. Use one instance per thread."""

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = 30.0):
        self.path = Path(path)
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, timeout=timeout, check_same_thread=False
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False)
            conn.isolation_level = None  # explicit BEGIN/COMMIT below
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise DatabaseError(f"cannot open the library database {self.path}: {e}") from e
        self.conn = conn
        # The schema is checked before anything is written (even the journal mode): a database
        # from a newer photosift, or not ours at all, is left byte for byte as it was.
        self._check_schema(readonly)
        if not readonly:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            except sqlite3.Error as e:
                conn.close()
                raise DatabaseError(f"cannot open the library database {self.path}: {e}") from e

    # -- schema ---------------------------------------------------------------------------

    def _version(self) -> int:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            return 0  # empty database
        except sqlite3.DatabaseError as e:
            raise DatabaseError(f"{self.path} is not a photosift database ({e})") from e
        return int(row[0]) if row else 0

    def _check_schema(self, readonly: bool) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} was written by a newer photosift (schema {version}, this version "
                f"reads up to {SCHEMA_VERSION}); it was left untouched. Update photosift to open it."
            )
        if version == SCHEMA_VERSION:
            return
        if readonly:
            raise DatabaseError(f"{self.path} needs upgrading; open it read-write once")
        if version == 0 and self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table'").fetchone():
            raise DatabaseError(f"{self.path} is not a photosift database; it was left untouched")
        with self.transaction():
            if version == 0:
                for stmt in _statements(_SCHEMA_V1):
                    self.conn.execute(stmt)
                version = 1
            while version < SCHEMA_VERSION:
                for stmt in _statements(MIGRATIONS[version]):
                    self.conn.execute(stmt)
                version += 1
            self.conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)", (str(version),)
            )

    def transaction(self):
        """Context manager: one IMMEDIATE transaction (writers queue instead of failing)."""
        return _Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()

    # -- folders --------------------------------------------------------------------------

    def add_folder(self, path: str, *, poll: bool = False) -> int:
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO folders(path, added_at, poll) VALUES(?,?,?)",
                (path, time.time(), int(poll)),
            )
            return self.conn.execute("SELECT id FROM folders WHERE path=?", (path,)).fetchone()[0]

    def remove_folder(self, folder_id: int) -> list[int]:
        """Forget a folder and its files. Returns the images left without any file."""
        with self.transaction():
            self.conn.execute("DELETE FROM files WHERE folder_id=?", (folder_id,))
            self.conn.execute("DELETE FROM folders WHERE id=?", (folder_id,))
            return self._mark_orphans()

    def folders(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT f.id, f.path, f.online, f.poll, f.last_scan, "
            "(SELECT COUNT(*) FROM files WHERE folder_id=f.id), "
            "(SELECT COUNT(*) FROM failures WHERE folder_id=f.id) FROM folders f ORDER BY f.path"
        )
        cols = ("id", "path", "online", "poll", "last_scan", "files", "failures")
        return [dict(zip(cols, r, strict=True)) for r in cur]

    def folder_id(self, path: str) -> int | None:
        row = self.conn.execute("SELECT id FROM folders WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def set_folder_state(self, folder_id: int, *, online: bool, scanned: bool = False) -> None:
        with self.transaction():
            if scanned:
                self.conn.execute(
                    "UPDATE folders SET online=?, last_scan=? WHERE id=?",
                    (int(online), time.time(), folder_id),
                )
            else:
                self.conn.execute("UPDATE folders SET online=? WHERE id=?", (int(online), folder_id))

    # -- files ----------------------------------------------------------------------------

    def files_in_folder(self, folder_id: int) -> dict[str, FileRow]:
        cur = self.conn.execute(
            "SELECT path, image_id, size, mtime_ns FROM files WHERE folder_id=?", (folder_id,)
        )
        return {r[0]: FileRow(*r) for r in cur}

    def failures_in_folder(self, folder_id: int) -> dict[str, tuple[int | None, int | None]]:
        cur = self.conn.execute(
            "SELECT path, size, mtime_ns FROM failures WHERE folder_id=?", (folder_id,)
        )
        return {r[0]: (r[1], r[2]) for r in cur}

    def remove_files(self, paths: Iterable[str]) -> list[int]:
        """Drop file rows (the files are gone). Returns images left without any file."""
        paths = list(paths)
        with self.transaction():
            self.conn.executemany("DELETE FROM files WHERE path=?", ((p,) for p in paths))
            self.conn.executemany("DELETE FROM failures WHERE path=?", ((p,) for p in paths))
            return self._mark_orphans()

    def move_file(self, old: str, new: str, folder_id: int, size: int, mtime_ns: int) -> bool:
        """Point an existing file row at its new path. False if `old` was not indexed."""
        with self.transaction():
            self.conn.execute("DELETE FROM files WHERE path=?", (new,))
            cur = self.conn.execute(
                "UPDATE files SET path=?, folder_id=?, size=?, mtime_ns=?, ext=? WHERE path=?",
                (new, folder_id, size, mtime_ns, _ext(new), old),
            )
            self._mark_orphans()
            return cur.rowcount > 0

    def _mark_orphans(self) -> list[int]:
        now = time.time()
        self.conn.execute(
            "UPDATE images SET orphan_since=? WHERE orphan_since IS NULL AND "
            "NOT EXISTS (SELECT 1 FROM files WHERE files.image_id=images.id)",
            (now,),
        )
        return [r[0] for r in self.conn.execute("SELECT id FROM images WHERE orphan_since=?", (now,))]

    def _mark_orphans_among(self, image_ids: list[int], now: float) -> None:
        """Like _mark_orphans, but only looks at the given images (cheap inside a batch)."""
        for image_id in set(image_ids):
            self.conn.execute(
                "UPDATE images SET orphan_since=? WHERE id=? AND orphan_since IS NULL AND "
                "NOT EXISTS (SELECT 1 FROM files WHERE files.image_id=images.id)",
                (now, image_id),
            )

    def paths_missing_vectors(self, folder_id: int, space_id: int) -> dict[str, FileRow]:
        """Indexed files whose photo has no vector in this space (e.g. after a model switch)."""
        cur = self.conn.execute(
            "SELECT path, image_id, size, mtime_ns FROM files WHERE folder_id=? AND NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.space_id=? AND v.image_id=files.image_id)",
            (folder_id, space_id),
        )
        return {r[0]: FileRow(*r) for r in cur}

    def failures(self, folder_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT path, reason, at FROM failures"
        args: tuple = ()
        if folder_id is not None:
            sql += " WHERE folder_id=?"
            args = (folder_id,)
        return [dict(path=p, reason=r, at=a) for p, r, a in self.conn.execute(sql + " ORDER BY path", args)]

    # -- spaces and vectors ---------------------------------------------------------------

    def space_id(self, key: str, dim: int) -> int:
        row = self.conn.execute("SELECT id, dim FROM spaces WHERE key=?", (key,)).fetchone()
        if row:
            if row[1] != dim:
                raise DatabaseError(f"image space {key!r} holds {row[1]}-d vectors, not {dim}-d")
            return row[0]
        with self.transaction():
            self.conn.execute("INSERT OR IGNORE INTO spaces(key, dim) VALUES(?,?)", (key, dim))
            return self.conn.execute("SELECT id FROM spaces WHERE key=?", (key,)).fetchone()[0]

    def space_seq(self, space_id: int) -> int:
        return self.conn.execute("SELECT seq FROM spaces WHERE id=?", (space_id,)).fetchone()[0]

    def known_hashes(self, space_id: int) -> set[str]:
        """Content hashes that already have a vector in this space (never re-embedded)."""
        cur = self.conn.execute(
            "SELECT i.hash FROM images i JOIN vectors v ON v.image_id=i.id WHERE v.space_id=?",
            (space_id,),
        )
        return {r[0] for r in cur}

    def commit_batch(
        self, space_id: int, photos: list[NewPhoto], failures: list[Failure] = ()
    ) -> tuple[int, list[tuple[int, np.ndarray]]]:
        """Write one batch in one transaction.

        Returns the new seq of the space and the (image_id, vector) pairs added, for the ANN.
        """
        added: list[tuple[int, np.ndarray]] = []
        replaced: list[int] = []
        now = time.time()
        with self.transaction():
            seq = self.conn.execute("SELECT seq FROM spaces WHERE id=?", (space_id,)).fetchone()[0] + 1
            for p in photos:
                m = p.meta
                self.conn.execute(
                    "INSERT INTO images(hash, width, height, format, taken_at, camera_make, "
                    "camera_model, gps_lat, gps_lon, added_at) VALUES(?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT(hash) DO UPDATE SET orphan_since=NULL",
                    (
                        p.hash, m.get("width"), m.get("height"), m.get("format"), m.get("taken_at"),
                        m.get("camera_make"), m.get("camera_model"), m.get("gps_lat"),
                        m.get("gps_lon"), now,
                    ),
                )  # fmt: skip
                image_id = self.conn.execute("SELECT id FROM images WHERE hash=?", (p.hash,)).fetchone()[0]
                if p.vector is not None:
                    vec = np.ascontiguousarray(p.vector, dtype=np.float32)
                    self.conn.execute(
                        "INSERT OR REPLACE INTO vectors(space_id, image_id, vec, seq) VALUES(?,?,?,?)",
                        (space_id, image_id, vec.tobytes(), seq),
                    )
                    self.conn.execute(
                        "DELETE FROM tombstones WHERE space_id=? AND image_id=?", (space_id, image_id)
                    )
                    added.append((image_id, vec))
                prev = self.conn.execute("SELECT image_id FROM files WHERE path=?", (p.path,)).fetchone()
                if prev and prev[0] != image_id:
                    replaced.append(prev[0])  # the path now shows other content
                self.conn.execute(
                    "INSERT INTO files(path, folder_id, image_id, size, mtime_ns, ext) "
                    "VALUES(?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET folder_id=excluded.folder_id,"
                    " image_id=excluded.image_id, size=excluded.size, mtime_ns=excluded.mtime_ns",
                    (p.path, p.folder_id, image_id, p.size, p.mtime_ns, _ext(p.path)),
                )
                self.conn.execute("DELETE FROM failures WHERE path=?", (p.path,))
            for f in failures:
                self.conn.execute(
                    "INSERT OR REPLACE INTO failures(path, folder_id, size, mtime_ns, reason, at) "
                    "VALUES(?,?,?,?,?,?)",
                    (f.path, f.folder_id, f.size, f.mtime_ns, f.reason, now),
                )
                prev = self.conn.execute("SELECT image_id FROM files WHERE path=?", (f.path,)).fetchone()
                if prev:
                    replaced.append(prev[0])
                # A file that used to be fine and is now broken no longer shows its old content.
                self.conn.execute("DELETE FROM files WHERE path=?", (f.path,))
            self._mark_orphans_among(replaced, now)
            self.conn.execute("UPDATE spaces SET seq=? WHERE id=?", (seq, space_id))
        return seq, added

    def gc_orphans(self, grace_s: float = 0.0) -> list[tuple[int, int]]:
        """Delete images without files for longer than `grace_s`, with their vectors.

        Returns (space_id, image_id) pairs whose vectors were removed, for the ANN.
        """
        cutoff = time.time() - grace_s
        removed: list[tuple[int, int]] = []
        with self.transaction():
            ids = [
                r[0]
                for r in self.conn.execute(
                    "SELECT id FROM images WHERE orphan_since IS NOT NULL AND orphan_since<=? AND "
                    "NOT EXISTS (SELECT 1 FROM files WHERE files.image_id=images.id)",
                    (cutoff,),
                )
            ]
            if not ids:
                return removed
            for (space_id,) in self.conn.execute("SELECT id FROM spaces").fetchall():
                seq = self.space_seq(space_id) + 1
                gone = [
                    i
                    for i in ids
                    if self.conn.execute(
                        "SELECT 1 FROM vectors WHERE space_id=? AND image_id=?", (space_id, i)
                    ).fetchone()
                ]
                if not gone:
                    continue
                self.conn.executemany(
                    "INSERT OR REPLACE INTO tombstones(space_id, image_id, seq) VALUES(?,?,?)",
                    ((space_id, i, seq) for i in gone),
                )
                self.conn.executemany(
                    "DELETE FROM vectors WHERE space_id=? AND image_id=?", ((space_id, i) for i in gone)
                )
                self.conn.execute("UPDATE spaces SET seq=? WHERE id=?", (seq, space_id))
                removed += [(space_id, i) for i in gone]
            self.conn.executemany("DELETE FROM images WHERE id=?", ((i,) for i in ids))
        return removed

    def vector_count(self, space_id: int) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM vectors WHERE space_id=?", (space_id,)).fetchone()[0]

    def iter_vectors(
        self, space_id: int, *, after_seq: int = 0, chunk: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(image_ids int64 [n], vectors float32 [n, d]) chunks, optionally only newer than a seq."""
        cur = self.conn.execute(
            "SELECT image_id, vec FROM vectors WHERE space_id=? AND seq>? ORDER BY image_id",
            (space_id, after_seq),
        )
        while rows := cur.fetchmany(chunk):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vecs

    def tombstones_after(self, space_id: int, seq: int) -> list[int]:
        cur = self.conn.execute(
            "SELECT image_id FROM tombstones WHERE space_id=? AND seq>?", (space_id, seq)
        )
        return [r[0] for r in cur]

    def vectors_for(self, space_id: int, image_ids: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for i in range(0, len(image_ids), 500):
            chunk = image_ids[i : i + 500]
            q = ",".join("?" * len(chunk))
            for image_id, vec in self.conn.execute(
                f"SELECT image_id, vec FROM vectors WHERE space_id=? AND image_id IN ({q})",
                (space_id, *chunk),
            ):
                out[image_id] = np.frombuffer(vec, dtype=np.float32)
        return out

    # -- lookups for search and status ----------------------------------------------------

    def image_id_for_path(self, path: str) -> int | None:
        row = self.conn.execute("SELECT image_id FROM files WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def image_id_for_hash(self, h: str) -> int | None:
        row = self.conn.execute("SELECT id FROM images WHERE hash=?", (h,)).fetchone()
        return row[0] if row else None

    def describe_images(self, image_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Path(s) and metadata for images, for result lists. Offline files come last;
        ``twins`` names the other half of a RAW + JPEG pair (see :meth:`twin_paths`)."""
        out: dict[int, dict[str, Any]] = {}
        for i in range(0, len(image_ids), 500):
            chunk = image_ids[i : i + 500]
            q = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                "SELECT i.id, f.path, fo.online, i.width, i.height, i.format, i.taken_at, "
                "i.camera_make, i.camera_model, f.size FROM images i JOIN files f ON f.image_id=i.id "
                f"JOIN folders fo ON fo.id=f.folder_id WHERE i.id IN ({q}) "
                "ORDER BY fo.online DESC, f.path",
                chunk,
            ):
                d = out.get(row[0])
                if d is None:
                    out[row[0]] = dict(
                        image_id=row[0], path=row[1], online=bool(row[2]), width=row[3],
                        height=row[4], format=row[5], taken_at=row[6], camera_make=row[7],
                        camera_model=row[8], size=row[9], other_paths=[],
                    )  # fmt: skip
                else:
                    d["other_paths"].append(row[1])
        twins = self.twin_paths(list(out)) if out else {}
        for image_id, d in out.items():
            d["twins"] = twins.get(image_id, [])
        return out

    def raw_jpeg_pairs(self, space_id: int | None = None) -> list[tuple[int, int]]:
        """(RAW image id, JPEG image id) for every RAW file with a JPEG (or HEIF) of the same
        stem beside it: the two files a camera writes for one shot in "RAW + JPEG" mode.

        With ``space_id``, only pairs whose JPEG has a vector in that space (is searchable).
        Kept until the database changes (76 ms for 40,000 pairs among 100,000 files, once)."""
        # data_version moves when another connection commits, total_changes when this one writes.
        key = (self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes, space_id)
        cached = getattr(self, "_pairs", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        raws, jpegs = sorted(RAW_EXTENSIONS), sorted(PAIR_EXTENSIONS)
        sql = (
            "SELECT DISTINCT r.image_id, j.image_id FROM files r JOIN files j ON j.stem = r.stem "
            f"WHERE r.ext IN ({','.join('?' * len(raws))}) AND j.ext IN ({','.join('?' * len(jpegs))}) "
            "AND j.image_id != r.image_id"
        )
        args: list = [*raws, *jpegs]
        if space_id is not None:
            sql += " AND EXISTS (SELECT 1 FROM vectors v WHERE v.space_id=? AND v.image_id=j.image_id)"
            args.append(space_id)
        pairs = self.conn.execute(sql, args).fetchall()
        self._pairs = (key, pairs)
        return pairs

    def hidden_raw_twins(self, space_id: int | None = None, shown: set[int] | None = None) -> set[int]:
        """RAW images a list leaves out because the JPEG of their pair stands for them.

        ``shown``: the images the list may hold (its filters); a RAW whose JPEG is not among
        them (a type filter for RAW files, say) is not hidden."""
        return {r for r, j in self.raw_jpeg_pairs(space_id) if shown is None or j in shown}

    def twin_paths(self, image_ids: list[int]) -> dict[int, list[str]]:
        """image id -> the other half of its RAW + JPEG pairs (the RAW files of a JPEG, the
        JPEG of a RAW), by path."""
        mine: dict[str, list[tuple[int, bool]]] = {}  # stem -> (image id, is RAW) of these images
        for i in range(0, len(image_ids), 500):
            chunk = image_ids[i : i + 500]
            q = ",".join("?" * len(chunk))
            for image_id, stem, ext in self.conn.execute(
                f"SELECT image_id, stem, ext FROM files WHERE image_id IN ({q})", chunk
            ):
                if ext in RAW_EXTENSIONS or ext in PAIR_EXTENSIONS:
                    mine.setdefault(stem, []).append((image_id, ext in RAW_EXTENSIONS))
        out: dict[int, list[str]] = {}
        stems = list(mine)
        for i in range(0, len(stems), 500):
            chunk = stems[i : i + 500]
            q = ",".join("?" * len(chunk))
            for stem, path, ext, other in self.conn.execute(
                f"SELECT stem, path, ext, image_id FROM files WHERE stem IN ({q}) ORDER BY path", chunk
            ):
                other_is_raw = ext in RAW_EXTENSIONS
                if not other_is_raw and ext not in PAIR_EXTENSIONS:
                    continue
                for image_id, is_raw in mine[stem]:
                    if is_raw != other_is_raw and other != image_id:
                        out.setdefault(image_id, []).append(path)
        return out

    def filtered_image_ids(
        self,
        *,
        folders: list[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        exts: list[str] | None = None,
    ) -> set[int]:
        """Images with at least one file matching every given filter."""
        where, args = [], []
        if folders:
            parts = []
            for f in folders:
                f = f.rstrip("/\\")
                parts.append("(f.path = ? OR f.path LIKE ? ESCAPE '\\')")
                esc = f.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                args += [f, esc + "/%"]
            where.append("(" + " OR ".join(parts) + ")")
        if date_from:
            where.append("i.taken_at >= ?")
            args.append(date_from)
        if date_to:
            where.append("i.taken_at < ?")
            args.append(_day_after(date_to))
        if exts:
            norm = [e.lower().lstrip(".") for e in exts]
            norm += [{"jpg": "jpeg", "jpeg": "jpg", "tif": "tiff", "tiff": "tif"}.get(e, e) for e in norm]
            where.append(f"f.ext IN ({','.join('?' * len(norm))})")
            args += norm
        sql = "SELECT DISTINCT i.id FROM images i JOIN files f ON f.image_id=i.id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return {r[0] for r in self.conn.execute(sql, args)}

    def live_image_ids(self, space_id: int) -> np.ndarray:
        cur = self.conn.execute(
            "SELECT v.image_id FROM vectors v WHERE v.space_id=? AND EXISTS "
            "(SELECT 1 FROM files f WHERE f.image_id=v.image_id)",
            (space_id,),
        )
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        return dict(
            folders=one("SELECT COUNT(*) FROM folders"),
            offline_folders=one("SELECT COUNT(*) FROM folders WHERE online=0"),
            files=one("SELECT COUNT(*) FROM files"),
            images=one("SELECT COUNT(*) FROM images WHERE orphan_since IS NULL"),
            failures=one("SELECT COUNT(*) FROM failures"),
        )

    def vectors_per_space(self) -> dict[str, int]:
        cur = self.conn.execute(
            "SELECT s.key, COUNT(v.image_id) FROM spaces s LEFT JOIN vectors v ON v.space_id=s.id "
            "GROUP BY s.id ORDER BY s.key"
        )
        return dict(cur.fetchall())


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (a trigger's body holds semicolons)."""
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                yield buf
            buf = ""


def _day_after(date: str) -> str:
    """'2024-05-01' -> '2024-05-02' so that date_to is inclusive of the whole day."""
    import datetime as dt

    try:
        d = dt.date.fromisoformat(date[:10])
    except ValueError:
        return date
    return (d + dt.timedelta(days=1)).isoformat()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.outer = False

    def __enter__(self):
        if self.conn.in_transaction:
            return self  # nested use joins the outer transaction
        self.outer = True
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.outer:
            return False
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                raise save_error(e) from e
        else:
            self._rollback()
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                raise save_error(exc) from exc
        return False

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL among them); a second
        # ROLLBACK would then raise and hide the error that matters.
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def save_error(e: sqlite3.Error) -> DatabaseError:
    """The typed error for a failed write: DiskFull when the disk is, else DatabaseError."""
    if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return DiskFull(
            "the disk holding the library database is full; the batch being saved was not "
            "written and everything saved before it is kept. Free some space, then indexing "
            "picks up where it stopped."
        )
    return DatabaseError(f"could not save to the library database: {e}")
