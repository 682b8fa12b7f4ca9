"""Vocabularies, answers, thresholds and automatic tags in the library database.

The tables are made by schema versions 2 and 3 (engine.store.db). Here is only SQL: what a label's
vector or probability is, is engine.tags.tagging's business.

* Answers (confirmed/rejected) are keyed by the photo's content hash, so they outlive
  re-indexing and model switches, and always win over automatic tags.
* Automatic tags are per model; they are derived from stored vectors and rewritten by
  every re-tag (only the rows that change are touched).
* Every vocabulary edit bumps its ``version``: a re-tag computed from an older version
  is not written (engine.tags.tagging recomputes it).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .vocab import Label, Vocabulary, VocabularyError, label_key, make_vocabulary

CONFIRMED, REJECTED = 1, -1
REBUILD_INDEX_ROWS = 50_000  # write_auto_tags: from this many new rows, rebuild the image index


@dataclass
class StoredLabel:
    id: int
    label: Label
    position: int


@dataclass
class StoredVocab:
    id: int
    vocab: Vocabulary
    version: int
    updated_at: float
    labels: list[StoredLabel]

    @property
    def name(self) -> str:
        return self.vocab.name

    def label(self, name: str) -> StoredLabel:
        k = label_key(name)
        for sl in self.labels:
            if label_key(sl.label.name) == k:
                return sl
        raise VocabularyError(f"vocabulary {self.name!r} has no label {name!r}")


def _conn(db):
    """A LibraryDB or a bare sqlite3 connection."""
    return getattr(db, "conn", db)


def _tx(db):
    from ..store.db import _Transaction

    return db.transaction() if hasattr(db, "transaction") else _Transaction(db)


# -- vocabularies ---------------------------------------------------------------------------


def vocab_names(db) -> list[str]:
    return [
        r[0]
        for r in _conn(db).execute("SELECT name FROM vocabularies ORDER BY name COLLATE NOCASE")
    ]


def _vocab_row(db, name: str):
    c = _conn(db)
    row = c.execute("SELECT id, name, description, templates, threshold, version, updated_at, auto "
                    "FROM vocabularies WHERE name=?", (name,)).fetchone()  # fmt: skip
    if row is None:  # forgiving about case: "Animals" finds "animals" when there is only one
        rows = c.execute("SELECT id, name, description, templates, threshold, version, updated_at, auto "
                         "FROM vocabularies WHERE name=? COLLATE NOCASE", (name,)).fetchall()  # fmt: skip
        row = rows[0] if len(rows) == 1 else None
    return row


def load(db, name: str) -> StoredVocab:
    """A stored vocabulary with its labels in order. Unknown name: VocabularyError."""
    row = _vocab_row(db, name)
    if row is None:
        raise VocabularyError(f"no vocabulary named {name!r}")
    vid, vname, desc, templates, threshold, version, updated, auto = row
    labels = []
    for lid, lname, syn, prompts, lthr, pos in _conn(db).execute(
        "SELECT id, name, synonyms, prompts, threshold, position FROM labels WHERE vocab_id=? "
        "ORDER BY position", (vid,)
    ):  # fmt: skip
        labels.append(
            StoredLabel(
                lid, Label(lname, tuple(json.loads(syn)), tuple(json.loads(prompts)), lthr), pos
            )
        )
    vocab = Vocabulary(vname, tuple(sl.label for sl in labels), tuple(json.loads(templates)),
                       threshold, desc, bool(auto))  # fmt: skip
    return StoredVocab(vid, vocab, version, updated, labels)


def load_all(db) -> list[StoredVocab]:
    return [load(db, n) for n in vocab_names(db)]


def create(db, vocab: Vocabulary, *, replace: bool = False) -> StoredVocab:
    """Store a new vocabulary (VocabularyError if the name is taken, unless `replace`)."""
    now = time.time()
    with _tx(db):
        c = _conn(db)
        row = c.execute("SELECT id FROM vocabularies WHERE name=?", (vocab.name,)).fetchone()
        if row is not None:
            if not replace:
                raise VocabularyError(f"there is already a vocabulary named {vocab.name!r}")
            # Replacing keeps the answers of labels that are still there (matched by name).
            return _replace_labels(db, row[0], vocab, now)
        cur = c.execute(
            "INSERT INTO vocabularies(name, description, templates, threshold, created_at, updated_at, auto) "
            "VALUES(?,?,?,?,?,?,?)",
            (vocab.name, vocab.description, json.dumps(list(vocab.templates), ensure_ascii=False),
             vocab.threshold, now, now, int(vocab.auto)),
        )  # fmt: skip
        _insert_labels(c, cur.lastrowid, list(vocab.labels), 0)
        return load(db, vocab.name)


def _insert_labels(c, vocab_id: int, labels: list[Label], start: int) -> None:
    c.executemany(
        "INSERT INTO labels(vocab_id, name, key, synonyms, prompts, threshold, position) VALUES(?,?,?,?,?,?,?)",
        ((vocab_id, lab.name, label_key(lab.name), json.dumps(list(lab.synonyms), ensure_ascii=False),
          json.dumps(list(lab.prompts), ensure_ascii=False), lab.threshold, start + i)
         for i, lab in enumerate(labels)),
    )  # fmt: skip


def _replace_labels(db, vocab_id: int, vocab: Vocabulary, now: float) -> StoredVocab:
    c = _conn(db)
    c.execute(
        "UPDATE vocabularies SET description=?, templates=?, threshold=?, updated_at=?, auto=?, version=version+1 "
        "WHERE id=?",
        (vocab.description, json.dumps(list(vocab.templates), ensure_ascii=False), vocab.threshold, now,
         int(vocab.auto), vocab_id),
    )  # fmt: skip
    old = {
        r[1]: r[0] for r in c.execute("SELECT id, key FROM labels WHERE vocab_id=?", (vocab_id,))
    }
    keep = {label_key(lab.name) for lab in vocab.labels}
    c.executemany("DELETE FROM labels WHERE id=?", ((i,) for k, i in old.items() if k not in keep))
    c.execute("UPDATE labels SET position=-1-position WHERE vocab_id=?", (vocab_id,))
    new = []
    for pos, lab in enumerate(vocab.labels):
        k = label_key(lab.name)
        if k in old:
            c.execute(
                "UPDATE labels SET name=?, synonyms=?, prompts=?, threshold=?, position=? WHERE id=?",
                (lab.name, json.dumps(list(lab.synonyms), ensure_ascii=False),
                 json.dumps(list(lab.prompts), ensure_ascii=False), lab.threshold, pos, old[k]),
            )  # fmt: skip
        else:
            new.append((pos, lab))
    for pos, lab in new:
        _insert_labels(c, vocab_id, [lab], pos)
    name = c.execute("SELECT name FROM vocabularies WHERE id=?", (vocab_id,)).fetchone()[0]
    return load(db, name)


def update(
    db,
    name: str,
    *,
    rename: str | None = None,
    add: list[Label] = (),
    remove: list[str] = (),
    rename_labels: dict[str, str] | None = None,
    edit: list[Label] = (),
    templates: tuple[str, ...] | None = None,
    threshold: float | None | type[...] = ...,
    auto: bool | None = None,
) -> StoredVocab:
    """Edit a vocabulary in one transaction. Renamed labels keep their answers and thresholds.

    `auto` None leaves the vocabulary's automatic tagging setting as it is."""
    with _tx(db):
        sv = load(db, name)
        c = _conn(db)
        labels = [sl.label for sl in sv.labels]
        ids = [sl.id for sl in sv.labels]
        by_key = {label_key(lab.name): i for i, lab in enumerate(labels)}
        for r in remove:
            if label_key(r) not in by_key:
                raise VocabularyError(f"vocabulary {sv.name!r} has no label {r!r} to remove")
        for old in rename_labels or {}:
            if label_key(old) not in by_key:
                raise VocabularyError(f"vocabulary {sv.name!r} has no label {old!r} to rename")
        for lab in edit:
            if label_key(lab.name) not in by_key:
                raise VocabularyError(f"vocabulary {sv.name!r} has no label {lab.name!r} to edit")
        # Build the new list, then check it as a whole (duplicates, limits, empty names).
        gone = {label_key(r) for r in remove}
        renames = {label_key(o): n for o, n in (rename_labels or {}).items()}
        edits = {label_key(lab.name): lab for lab in edit}
        new_list: list[Label] = []
        new_ids: list[int | None] = []
        for lab, lid in zip(labels, ids, strict=True):
            k = label_key(lab.name)
            if k in gone:
                continue
            if k in edits:
                e = edits[k]
                lab = Label(lab.name, e.synonyms, e.prompts, e.threshold)
            if k in renames:
                lab = Label(renames[k], lab.synonyms, lab.prompts, lab.threshold)
            new_list.append(lab)
            new_ids.append(lid)
        new_list += list(add)
        new_ids += [None] * len(add)
        checked = make_vocabulary(
            rename if rename is not None else sv.name, new_list,
            templates=list(templates) if templates is not None else list(sv.vocab.templates),
            threshold=sv.vocab.threshold if threshold is ... else threshold,
            description=sv.vocab.description, where=f"vocabulary {sv.name!r}",
            auto=sv.vocab.auto if auto is None else auto,
        )  # fmt: skip
        if checked.name != sv.name:
            taken = c.execute(
                "SELECT 1 FROM vocabularies WHERE name=? AND id<>?", (checked.name, sv.id)
            ).fetchone()
            if taken:
                raise VocabularyError(f"there is already a vocabulary named {checked.name!r}")
        c.execute(
            "UPDATE vocabularies SET name=?, templates=?, threshold=?, updated_at=?, auto=?, version=version+1 "
            "WHERE id=?",
            (checked.name, json.dumps(list(checked.templates), ensure_ascii=False), checked.threshold,
             time.time(), int(checked.auto), sv.id),
        )  # fmt: skip
        keep = {i for i in new_ids if i is not None}
        c.executemany("DELETE FROM labels WHERE id=?", ((i,) for i in ids if i not in keep))
        # Positions and keys move about: park the kept ones out of the way first (UNIQUE(vocab, key)).
        c.executemany("UPDATE labels SET key=?, position=? WHERE id=?",
                      ((f"\x00{i}", -1 - n, i) for n, i in enumerate(keep)))  # fmt: skip
        for pos, (lab, lid) in enumerate(zip(checked.labels, new_ids, strict=True)):
            if lid is None:
                _insert_labels(c, sv.id, [lab], pos)
            else:
                c.execute(
                    "UPDATE labels SET name=?, key=?, synonyms=?, prompts=?, threshold=?, position=? WHERE id=?",
                    (lab.name, label_key(lab.name), json.dumps(list(lab.synonyms), ensure_ascii=False),
                     json.dumps(list(lab.prompts), ensure_ascii=False), lab.threshold, pos, lid),
                )  # fmt: skip
        return load(db, checked.name)


def delete(db, name: str) -> str:
    with _tx(db):
        sv = load(db, name)
        _conn(db).execute("DELETE FROM vocabularies WHERE id=?", (sv.id,))
    return sv.name


def version(db, vocab_id: int) -> int | None:
    row = _conn(db).execute("SELECT version FROM vocabularies WHERE id=?", (vocab_id,)).fetchone()
    return row[0] if row else None


# -- models and per-label state -------------------------------------------------------------


def model_id(db, key: str) -> int:
    c = _conn(db)
    row = c.execute("SELECT id FROM tag_models WHERE key=?", (key,)).fetchone()
    if row:
        return row[0]
    with _tx(db):
        c.execute("INSERT OR IGNORE INTO tag_models(key) VALUES(?)", (key,))
        return c.execute("SELECT id FROM tag_models WHERE key=?", (key,)).fetchone()[0]


def label_states(db, model: int, label_ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    c = _conn(db)
    for i in range(0, len(label_ids), 500):
        chunk = label_ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        for lid, sig, vec, cal, user in c.execute(
            f"SELECT label_id, text_sig, text_vec, calibrated, user_threshold FROM label_state "
            f"WHERE model_id=? AND label_id IN ({q})", (model, *chunk)
        ):  # fmt: skip
            out[lid] = dict(sig=sig, vec=None if vec is None else np.frombuffer(vec, np.float32),
                            calibrated=cal, user=user)  # fmt: skip
    return out


def save_text_vectors(db, model: int, rows: list[tuple[int, str, np.ndarray]]) -> None:
    with _tx(db):
        _conn(db).executemany(
            "INSERT INTO label_state(label_id, model_id, text_sig, text_vec) VALUES(?,?,?,?) "
            "ON CONFLICT(label_id, model_id) DO UPDATE SET text_sig=excluded.text_sig, text_vec=excluded.text_vec",
            ((lid, model, sig, np.ascontiguousarray(v, np.float32).tobytes()) for lid, sig, v in rows),
        )  # fmt: skip


def set_threshold(db, model: int, label_id: int, *, calibrated: float | None | type[...] = ...,
                  user: float | None | type[...] = ...) -> None:  # fmt: skip
    c = _conn(db)
    with _tx(db):
        c.execute(
            "INSERT OR IGNORE INTO label_state(label_id, model_id) VALUES(?,?)", (label_id, model)
        )
        if calibrated is not ...:
            c.execute(
                "UPDATE label_state SET calibrated=? WHERE label_id=? AND model_id=?",
                (calibrated, label_id, model),
            )
        if user is not ...:
            c.execute(
                "UPDATE label_state SET user_threshold=? WHERE label_id=? AND model_id=?",
                (user, label_id, model),
            )


# -- answers ----------------------------------------------------------------------------------


def set_answers(db, label_id: int, image_ids: list[int], state: int | None) -> int:
    """Record (state 1 / -1) or forget (None) the user's answer for these photos."""
    c = _conn(db)
    now = time.time()
    n = 0
    with _tx(db):
        for image_id in image_ids:
            row = c.execute("SELECT hash FROM images WHERE id=?", (image_id,)).fetchone()
            if row is None:
                raise VocabularyError(f"no photo with id {image_id} in the library")
            if state is None:
                n += c.execute(
                    "DELETE FROM tag_answers WHERE label_id=? AND image_hash=?", (label_id, row[0])
                ).rowcount
            else:
                c.execute("INSERT OR REPLACE INTO tag_answers(label_id, image_hash, state, at) VALUES(?,?,?,?)",
                          (label_id, row[0], state, now))  # fmt: skip
                n += 1
    return n


def answers(db, label_ids: list[int]) -> dict[int, tuple[list[int], list[int]]]:
    """label id -> (image ids confirmed, image ids rejected), for photos in the library."""
    out: dict[int, tuple[list[int], list[int]]] = {lid: ([], []) for lid in label_ids}
    c = _conn(db)
    for i in range(0, len(label_ids), 500):
        chunk = label_ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        for lid, image_id, state in c.execute(
            f"SELECT a.label_id, im.id, a.state FROM tag_answers a JOIN images im ON im.hash=a.image_hash "
            f"WHERE a.label_id IN ({q}) ORDER BY a.at, im.id", chunk
        ):  # fmt: skip
            out[lid][0 if state == CONFIRMED else 1].append(image_id)
    return out


def answers_for_image(db, image_id: int) -> dict[int, int]:
    """label id -> state, for one photo."""
    return dict(_conn(db).execute(
        "SELECT a.label_id, a.state FROM tag_answers a JOIN images im ON im.hash=a.image_hash WHERE im.id=?",
        (image_id,),
    ).fetchall())  # fmt: skip


# -- automatic tags -----------------------------------------------------------------------------


def auto_tags(db, model: int, label_ids: list[int]) -> np.ndarray:
    """Stored automatic tags as int64 keys label_id << 32 | image_id (sorted)."""
    c = _conn(db)
    keys: list[np.ndarray] = []
    for i in range(0, len(label_ids), 500):
        chunk = label_ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        # Keys made and gathered in SQLite (one JSON array): 3x faster than a Python row per tag.
        (arr,) = c.execute(f"SELECT json_group_array((label_id << 32) | image_id) FROM auto_tags "
                           f"WHERE model_id=? AND label_id IN ({q})", (model, *chunk)).fetchone()  # fmt: skip
        a = np.array(json.loads(arr), np.int64)
        if len(a):
            keys.append(a)
    return np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.int64)


@contextlib.contextmanager
def big_cache(db, mib: int = 64):
    """A larger page cache while a re-tag writes: the image-order index of auto_tags is
    updated in random order, and SQLite's default 2 MiB cache thrashes on it."""
    c = _conn(db)
    before = c.execute("PRAGMA cache_size").fetchone()[0]
    c.execute(f"PRAGMA cache_size=-{int(mib) * 1024}")
    try:
        yield
    finally:
        c.execute(f"PRAGMA cache_size={int(before)}")


def write_auto_tags(db, model: int, added: np.ndarray, removed: np.ndarray) -> None:
    """Apply a diff of keys (label_id << 32 | image_id); call inside a transaction.

    The keys go to SQLite as one JSON array each, unpacked by json_each in C: several
    times faster than one Python-side row per key for the 100,000s of rows of a re-tag."""
    c = _conn(db)
    if len(removed):
        c.execute(
            "DELETE FROM auto_tags WHERE model_id=? AND (label_id, image_id) IN "
            "(SELECT value >> 32, value & 4294967295 FROM json_each(?))",
            (model, json.dumps(removed.tolist())),
        )
    if len(added):
        # Many new rows (a new vocabulary): the image-order index is updated in random order,
        # row by row; building it afresh afterwards (one sort) is faster once the new rows
        # are at least as many as the old. Both happen in the caller's transaction.
        rebuild = len(added) >= REBUILD_INDEX_ROWS and len(added) >= c.execute(
            "SELECT COUNT(*) FROM auto_tags").fetchone()[0]  # fmt: skip
        if rebuild:
            c.execute("DROP INDEX auto_tags_image")
        c.execute(
            "INSERT OR IGNORE INTO auto_tags(label_id, model_id, image_id) "
            "SELECT value >> 32, ?, value & 4294967295 FROM json_each(?)",
            (model, json.dumps(added.tolist())),
        )
        if rebuild:
            c.execute("CREATE INDEX auto_tags_image ON auto_tags(image_id, model_id)")


def effective_ids(db, model: int, label_id: int) -> set[int]:
    """Photos carrying the label: confirmed, or automatic and not rejected."""
    c = _conn(db)
    auto = {
        r[0]
        for r in c.execute(
            "SELECT image_id FROM auto_tags WHERE label_id=? AND model_id=?", (label_id, model)
        )
    }
    conf, rej = answers(db, [label_id])[label_id]
    return (auto - set(rej)) | set(conf)


def counts(db, model: int, label_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per label: automatic, confirmed, rejected, and tagged (what users see)."""
    c = _conn(db)
    out = {lid: dict(auto=0, confirmed=0, rejected=0, tagged=0) for lid in label_ids}
    for i in range(0, len(label_ids), 500):
        chunk = label_ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        for lid, n in c.execute(f"SELECT label_id, COUNT(*) FROM auto_tags WHERE model_id=? AND label_id IN ({q}) "
                                f"GROUP BY label_id", (model, *chunk)):  # fmt: skip
            out[lid]["auto"] = n
        for lid, state, n in c.execute(
            f"SELECT a.label_id, a.state, COUNT(*) FROM tag_answers a JOIN images im ON im.hash=a.image_hash "
            f"WHERE a.label_id IN ({q}) GROUP BY a.label_id, a.state", chunk
        ):  # fmt: skip
            out[lid]["confirmed" if state == CONFIRMED else "rejected"] = n
        # tagged = auto - (auto and rejected) + (confirmed and not auto)
        for lid, auto_rej, conf_not_auto in c.execute(
            f"SELECT a.label_id, SUM(a.state=-1 AND t.image_id IS NOT NULL), SUM(a.state=1 AND t.image_id IS NULL) "
            f"FROM tag_answers a JOIN images im ON im.hash=a.image_hash LEFT JOIN auto_tags t "
            f"ON t.label_id=a.label_id AND t.model_id=? AND t.image_id=im.id WHERE a.label_id IN ({q}) "
            f"GROUP BY a.label_id", (model, *chunk)
        ):  # fmt: skip
            out[lid]["tagged"] = -(auto_rej or 0) + (conf_not_auto or 0)
    for d in out.values():
        d["tagged"] += d["auto"]
    return out
