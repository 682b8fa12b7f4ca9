"""Nearest-neighbour search over one image space: hnswlib as a cache of SQLite.

The database is the truth; the HNSW file beside it is a derived cache. A small
JSON sidecar records which ``spaces.seq`` the file reflects, its size and a
hash. On open the cache is *checked*, not trusted:

* missing, truncated, damaged or of another dimension -> rebuilt from SQLite;
* older than the database (a crash after a commit but before a save) ->
  caught up from the vectors and tombstones newer than its seq;
* any disagreement left over (count of live ids) -> rebuilt.

Below ``exact_threshold`` vectors, search is exact (a matrix product): HNSW
buys nothing on small libraries, and exact results are easier to trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .db import LibraryDB

FORMAT_VERSION = 1
DEFAULT_EXACT_THRESHOLD = 20_000


def hnsw_bytes_per_vector(dim: int, m: int, threads: int = 1) -> float:
    """Memory hnswlib holds per stored vector (at capacity == count), from its layout.

    From hnswalg.h: each element's level-0 record (float32 vector, 2*M neighbour ids and a
    count, its 8-byte label), a link-list pointer, its level (int), a std::mutex (40 bytes
    on glibc), an unordered_map label->id entry (~24-byte node rounded up by malloc, plus
    a bucket pointer), upper-level link lists for the 1/M of elements that have them
    (expected 1/(M-1) levels of M ids + count, plus malloc overhead), and one 2-byte
    visited mark per element for every thread that searches.
    """
    level0 = dim * 4 + 2 * m * 4 + 4 + 8
    per_element = 8 + 4 + 40 + (32 + 8)
    upper = (m * 4 + 4) / (m - 1) + 16 / m
    return level0 + per_element + upper + 2 * threads


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class AnnIndex:
    """Live vectors of one space, searchable. Thread-safe."""

    def __init__(
        self,
        dim: int,
        path: Path | None = None,
        *,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 128,
    ):
        self.dim = dim
        self.path = Path(path) if path else None
        self.exact_threshold = exact_threshold
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.seq = 0
        self.rebuilt_reason: str | None = None  # why open() rebuilt, for status and tests
        self._lock = threading.RLock()
        self._hnsw = None
        self._ids = np.zeros(0, dtype=np.int64)  # exact mode: ids and matrix, kept in step
        self._vecs = np.zeros((0, dim), dtype=np.float32)
        self._pos: dict[int, int] = {}
        self._deleted: set[int] = set()  # hnswlib keeps deleted labels until replaced

    # -- building -------------------------------------------------------------------------

    def _new_hnsw(self, capacity: int):
        import hnswlib

        index = hnswlib.Index(space="ip", dim=self.dim)
        index.init_index(
            max_elements=max(capacity, 1024), ef_construction=self.ef_construction, M=self.m,
            allow_replace_deleted=True,
        )  # fmt: skip
        index.set_ef(self.ef_search)
        return index

    def __len__(self) -> int:
        with self._lock:
            if self._hnsw is not None:
                return self._hnsw.get_current_count() - len(self._deleted)
            return len(self._ids)

    def ef_for(self, k: int, n: int | None = None) -> int:
        """The ef hnswlib searches with for a top-`k` query over `n` (default: all) vectors.

        hnswlib needs ef >= k, and recall at ef == k is poor, so large k gets 2k. Below
        that, ``ef_search``: on CLIP-like vectors (engine/bench/query.py, M=16) recall@10
        at 100k vectors is 0.97 at ef 32, 0.99 at 64 and 0.998 at 128; at 1M (a graph built
        with ef_construction 64, weaker than the default) 0.947 at 64, 0.975 at 128 and
        0.985 at 256. Recall falls slowly with size, so beyond a million vectors ef grows
        with log10(n) (x2 at ten million). Search takes about half a millisecond at ef 128,
        small beside the text encoder.
        """
        if n is None:
            n = len(self)
        scale = 1.0 + math.log10(n / 1e6) if n > 1_000_000 else 1.0
        return max(int(math.ceil(self.ef_search * scale)), 2 * k, 1)

    @property
    def mode(self) -> str:
        return "hnsw" if self._hnsw is not None else "exact"

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Add or replace vectors (L2-normalised float32)."""
        ids = np.asarray(ids, dtype=np.int64)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(ids), self.dim)
        if not len(ids):
            return
        with self._lock:
            if self._hnsw is None and len(self._ids) + len(ids) > self.exact_threshold:
                self._switch_to_hnsw(extra=len(ids))
            if self._hnsw is not None:
                index = self._hnsw
                need = index.get_current_count() + len(ids)
                if need > index.get_max_elements():
                    index.resize_index(max(need, int(index.get_max_elements() * 1.5)))
                for i in ids.tolist():
                    if i in self._deleted:
                        index.unmark_deleted(i)
                        self._deleted.discard(i)
                index.add_items(vecs, ids, replace_deleted=False)
                return
            fresh = []
            for row, i in enumerate(ids.tolist()):
                p = self._pos.get(i)
                if p is None:
                    fresh.append(row)
                else:
                    self._vecs[p] = vecs[row]
            if fresh:
                start = len(self._ids)
                self._ids = np.concatenate([self._ids, ids[fresh]])
                self._vecs = np.concatenate([self._vecs, vecs[fresh]])
                for k, i in enumerate(ids[fresh].tolist()):
                    self._pos[i] = start + k

    def remove(self, ids) -> None:
        with self._lock:
            if self._hnsw is not None:
                deleted = self._deleted
                for i in ids:
                    i = int(i)
                    if i in deleted:
                        continue
                    try:
                        self._hnsw.mark_deleted(i)
                        deleted.add(i)
                    except RuntimeError:
                        pass  # not in the index: nothing to remove
                return
            drop = {int(i) for i in ids} & self._pos.keys()
            if not drop:
                return
            keep = np.array([i not in drop for i in self._ids.tolist()], dtype=bool)
            self._ids, self._vecs = self._ids[keep], self._vecs[keep]
            self._pos = {i: p for p, i in enumerate(self._ids.tolist())}

    def _switch_to_hnsw(self, extra: int = 0) -> None:
        index = self._new_hnsw(int((len(self._ids) + extra) * 1.3))
        if len(self._ids):
            index.add_items(self._vecs, self._ids)
        self._hnsw = index
        self._ids = np.zeros(0, dtype=np.int64)
        self._vecs = np.zeros((0, self.dim), dtype=np.float32)
        self._pos = {}

    def ids(self) -> np.ndarray:
        with self._lock:
            if self._hnsw is not None:
                all_ids = np.asarray(self._hnsw.get_ids_list(), dtype=np.int64)
                deleted = self._deleted
                if deleted:
                    all_ids = all_ids[~np.isin(all_ids, np.fromiter(deleted, dtype=np.int64))]
                return np.sort(all_ids)
            return np.sort(self._ids)

    # -- searching ------------------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed: set[int] | None = None,
        excluded: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (image_id, cosine) for one unit query vector, optionally within `allowed` ids
        and never any of `excluded` (RAW files a JPEG stands for, say)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        if excluded and allowed is not None:
            allowed, excluded = allowed - excluded, None
        with self._lock:
            if self._hnsw is None:
                return self._exact(q[0], k, allowed, excluded)
            if allowed is not None and len(allowed) <= self.exact_threshold:
                ids = np.fromiter(allowed, dtype=np.int64)
                ids = ids[~np.isin(ids, np.fromiter(self._deleted, dtype=np.int64))]
                if not len(ids):
                    return []
                try:
                    vecs = np.asarray(self._hnsw.get_items(ids, return_type="numpy"), dtype=np.float32)
                except RuntimeError:
                    present = set(self._hnsw.get_ids_list())
                    ids = np.array([i for i in ids.tolist() if i in present], dtype=np.int64)
                    if not len(ids):
                        return []
                    vecs = np.asarray(self._hnsw.get_items(ids, return_type="numpy"), dtype=np.float32)
                return _topk(ids, vecs @ q[0], k)
            live = len(self)
            if not live:
                return []
            # Excluded ids that are not in the index only make k_eff smaller than it could be.
            k_eff = max(1, min(k, live - len(excluded or ())))
            self._hnsw.set_ef(self.ef_for(k_eff, live))
            flt: Callable[[int], bool] | None = None
            if allowed is not None:
                flt = allowed.__contains__
            elif excluded:
                flt = lambda i: i not in excluded  # noqa: E731
            try:
                labels, dists = self._hnsw.knn_query(q, k=k_eff, filter=flt)
            except RuntimeError:
                # hnswlib raises when the filter leaves fewer than k candidates reachable.
                labels, dists = self._hnsw.knn_query(q, k=max(1, k_eff // 4), filter=flt)
            return [(int(i), float(1.0 - d)) for i, d in zip(labels[0], dists[0], strict=True)]

    def _exact(
        self, q: np.ndarray, k: int, allowed: set[int] | None, excluded: set[int] | None = None
    ) -> list[tuple[int, float]]:
        ids, vecs = self._ids, self._vecs
        if allowed is not None:
            mask = np.isin(ids, np.fromiter(allowed, dtype=np.int64))
            ids, vecs = ids[mask], vecs[mask]
        if excluded:
            mask = ~np.isin(ids, np.fromiter(excluded, dtype=np.int64))
            ids, vecs = ids[mask], vecs[mask]
        if not len(ids):
            return []
        return _topk(ids, vecs @ q, k)

    def exact_search(self, query: np.ndarray, k: int, db_vectors: tuple[np.ndarray, np.ndarray]):
        """Brute force over given (ids, vectors): the reference for recall measurements."""
        ids, vecs = db_vectors
        return _topk(ids, vecs @ np.asarray(query, dtype=np.float32), k)

    # -- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the HNSW file and its sidecar atomically. Exact mode needs no file."""
        if self.path is None:
            return
        with self._lock:
            meta_path = self.path.with_suffix(".json")
            if self._hnsw is None:
                for p in (self.path, meta_path):
                    p.unlink(missing_ok=True)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            self._hnsw.save_index(os.fspath(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            st = tmp.stat()  # the rename below keeps its inode and mtime
            meta = dict(
                format=FORMAT_VERSION, dim=self.dim, seq=self.seq, count=len(self),
                deleted=sorted(self._deleted), size=st.st_size, digest=_file_digest(tmp),
                stamp=[st.st_size, st.st_mtime_ns, st.st_ino],
            )  # fmt: skip
            tmp.replace(self.path)
            mtmp = meta_path.with_name(meta_path.name + ".tmp")
            mtmp.write_text(json.dumps(meta))
            mtmp.replace(meta_path)

    @classmethod
    def open(
        cls,
        db: LibraryDB,
        space_id: int,
        dim: int,
        path: Path | None,
        *,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        **kw,
    ) -> AnnIndex:
        """Load the cache for a space and bring it in line with the database."""
        self = cls(dim, path, exact_threshold=exact_threshold, **kw)
        db_seq = db.space_seq(space_id)
        db_count = db.vector_count(space_id)
        if db_count <= exact_threshold:
            self._load_all(db, space_id)
            self.seq = db_seq
            return self
        reason = self._try_load_file()
        if reason is None:
            if self.seq > db_seq:
                reason = f"index is newer than the database (seq {self.seq} > {db_seq})"
            elif self.seq < db_seq:
                for ids, vecs in db.iter_vectors(space_id, after_seq=self.seq):
                    self.add(ids, vecs)
                self.remove(db.tombstones_after(space_id, self.seq))
                self.seq = db_seq
            if reason is None and len(self) != db_count:
                reason = f"index holds {len(self)} vectors, the database {db_count}"
        if reason is not None:
            self.rebuilt_reason = reason
            self._hnsw = None
            self._deleted = set()
            self._load_all(db, space_id)
            self.seq = db_seq
            self.save()
        return self

    def _try_load_file(self) -> str | None:
        """Load the HNSW file if it is intact. Returns why not, or None on success."""
        if self.path is None:
            return "no index file"
        meta_path = self.path.with_suffix(".json")
        if not self.path.is_file():
            return "index file missing"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return "index sidecar missing or unreadable"
        if meta.get("format") != FORMAT_VERSION or meta.get("dim") != self.dim:
            return "index file of another format or dimension"
        st = self.path.stat()
        size = st.st_size
        if size != meta.get("size"):
            return f"index file is {size} bytes, expected {meta.get('size')} (truncated or replaced)"
        # The file as it was written (same size, mtime and inode) was hashed then: hashing its
        # 200 MB again at every start (0.19 s of a 100,000-photo library's) proves nothing more.
        # Anything that rewrote it in place, or put another file there, is hashed again.
        if meta.get("stamp") != [st.st_size, st.st_mtime_ns, st.st_ino] \
                and _file_digest(self.path) != meta.get("digest"):  # fmt: skip
            return "index file content does not match its checksum"
        import hnswlib

        index = hnswlib.Index(space="ip", dim=self.dim)
        try:
            index.load_index(os.fspath(self.path), max_elements=0, allow_replace_deleted=True)
        except (RuntimeError, ValueError) as e:
            return f"index file unreadable ({e})"
        index.set_ef(self.ef_search)
        self._hnsw = index
        self._deleted = set(meta.get("deleted", []))
        self.seq = int(meta["seq"])
        if len(self) != meta.get("count"):
            self._hnsw = None
            return "index count does not match its sidecar"
        return None

    def _load_all(self, db: LibraryDB, space_id: int) -> None:
        total = db.vector_count(space_id)
        if total > self.exact_threshold:
            self._hnsw = self._new_hnsw(int(total * 1.2))
        for ids, vecs in db.iter_vectors(space_id):
            self.add(ids, vecs)


def _topk(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    if len(ids) > k:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(len(ids))
    order = part[np.argsort(-scores[part], kind="stable")]
    return [(int(ids[i]), float(scores[i])) for i in order]
