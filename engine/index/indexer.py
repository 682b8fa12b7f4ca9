"""The indexing pipeline: hash and decode ahead on a pool, embed and commit in batches.

Workers (threads: Pillow and ONNX Runtime release the GIL while they work)
read, hash, decode and preprocess files, at most ``window`` files ahead of the
consumer. The consumer — the caller's thread — runs the image encoder on full
batches and commits each batch in one transaction, then updates the ANN cache.
A crash loses at most the batch in flight; nothing committed is redone.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import DecodeError
from ..store.ann import AnnIndex
from ..store.db import Failure, LibraryDB, NewPhoto
from .scan import FileTask, file_hash


@dataclass
class Progress:
    """Reported after every batch: enough for a progress bar with rate and ETA."""

    done: int
    total: int
    embedded: int
    reused: int  # moved/copied/unchanged content: vector reused, nothing decoded
    failed: int
    elapsed_s: float
    rate: float  # files per second so far
    eta_s: float | None
    current: str | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class IndexReport:
    total: int = 0
    embedded: int = 0
    reused: int = 0
    failed: int = 0
    removed: int = 0
    cancelled: bool = False
    elapsed_s: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    # Where the consumer thread's time went: running the encoder, waiting for the decode
    # pool, committing to SQLite + the ANN. wait_s is what decoding failed to hide.
    encode_s: float = 0.0
    wait_s: float = 0.0
    commit_s: float = 0.0


@dataclass
class _Known:
    task: FileTask
    hash: str


@dataclass
class _Decoded:
    task: FileTask
    hash: str
    meta: dict
    pixels: np.ndarray


@dataclass
class _Failed:
    task: FileTask
    reason: str


def _meta_of(photo) -> dict:
    gps = getattr(photo, "gps", None)
    return dict(
        width=photo.width, height=photo.height, format=photo.format, taken_at=photo.taken_at,
        camera_make=photo.camera_make, camera_model=photo.camera_model,
        gps_lat=gps[0] if gps else None, gps_lon=gps[1] if gps else None,
    )  # fmt: skip


class Indexer:
    """Indexes FileTasks into one image space with one model.

    `model` needs ``input_size``, ``preprocess(image)`` and ``encode_images(pixels)``
    (engine.models.runtime.OnnxModel has them).
    """

    def __init__(
        self,
        db: LibraryDB,
        model,
        space_id: int,
        ann: AnnIndex | None = None,
        *,
        batch_size: int = 16,
        workers: int | None = None,
        window: int | None = None,
        max_pixels: int | None = None,
        on_commit: Callable[[np.ndarray, np.ndarray], None] | None = None,
    ):
        self.db, self.model, self.space_id, self.ann = db, model, space_id, ann
        self.on_commit = on_commit  # (image ids, vectors) of each committed batch: tagging
        self.batch_size = batch_size
        # On few cores the encoder wants most of the CPU; one or two decoders keep up with it.
        # (Two decoders on two cores fill the first batch sooner, but in engine/bench/pipeline.py
        # runs on the shared build machine they slowed the encoder more than that saved.)
        self.workers = workers or max(1, min(4, (os.cpu_count() or 2) - 1))
        self.window = window or max(2 * batch_size, 4 * self.workers)
        self.max_pixels = max_pixels

    def _prepare(self, task: FileTask, known: set[str], lock: threading.Lock):
        try:
            h = file_hash(task.path)
            with lock:
                if h in known:
                    return _Known(task, h)
            from ..photos.decode import decode_photo

            kw = {"max_pixels": self.max_pixels} if self.max_pixels else {}
            photo = decode_photo(task.path, target=self.model.input_size, **kw)
            pixels = self.model.preprocess(photo.image)
            st = os.stat(task.path)
            if (st.st_size, st.st_mtime_ns) != (task.size, task.mtime_ns):
                return _Failed(task, "file changed while it was being read; it will be retried")
            return _Decoded(task, h, _meta_of(photo), pixels)
        except DecodeError as e:
            return _Failed(task, str(e) or "cannot decode")
        except FileNotFoundError:
            return _Failed(task, "file vanished before it could be read")
        except OSError as e:
            return _Failed(task, f"cannot read file: {e.strerror or e}")

    def run(
        self,
        tasks: list[FileTask],
        *,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
    ) -> IndexReport:
        """Index `tasks`. Returns when done or cancelled; committed batches are kept either way."""
        report = IndexReport(total=len(tasks))
        start = time.perf_counter()
        known = self.db.known_hashes(self.space_id)
        lock = threading.Lock()
        batch: list[_Decoded] = []
        side: list[_Known | _Failed] = []
        done = 0

        def flush():
            nonlocal batch, side
            if not batch and not side:
                return
            photos, failures = [], []
            # Copies of one photo decoded in the same window (a tree full of duplicates, a linked
            # file) are embedded once: the first of them, unless an earlier batch already did it.
            fresh, copies, here = [], [], set()
            with lock:
                for d in batch:
                    (copies if d.hash in known or d.hash in here else fresh).append(d)
                    here.add(d.hash)
            if fresh:
                pixels = [d.pixels for d in fresh]  # NaFlex models: variable-length sequences
                t = time.perf_counter()
                vecs = self.model.encode_images(
                    np.stack(pixels) if isinstance(pixels[0], np.ndarray) else pixels
                )
                report.encode_s += time.perf_counter() - t
            t = time.perf_counter()
            if fresh:
                for d, v in zip(fresh, vecs, strict=True):
                    photos.append(NewPhoto(d.task.path, d.task.folder_id, d.task.size,
                                           d.task.mtime_ns, d.hash, d.meta, v))  # fmt: skip
            for d in copies:  # after the photo that carries the vector
                photos.append(NewPhoto(d.task.path, d.task.folder_id, d.task.size,
                                       d.task.mtime_ns, d.hash, d.meta))  # fmt: skip
            for s in side:
                if isinstance(s, _Known):
                    photos.append(NewPhoto(s.task.path, s.task.folder_id, s.task.size,
                                           s.task.mtime_ns, s.hash))  # fmt: skip
                else:
                    failures.append(Failure(s.task.path, s.task.folder_id, s.task.size,
                                            s.task.mtime_ns, s.reason))  # fmt: skip
            seq, added = self.db.commit_batch(self.space_id, photos, failures)
            if self.ann is not None and added:
                self.ann.add(np.array([a[0] for a in added]), np.stack([a[1] for a in added]))
                self.ann.seq = seq
            if self.on_commit is not None and added:
                self.on_commit(np.array([a[0] for a in added]), np.stack([a[1] for a in added]))
            with lock:
                known.update(d.hash for d in batch)
            report.commit_s += time.perf_counter() - t
            report.embedded += len(fresh)
            report.reused += len(copies) + sum(isinstance(s, _Known) for s in side)
            report.failed += len(failures)
            report.failures += [(f.path, f.reason) for f in failures]
            batch, side = [], []

        def report_progress(current: str | None):
            if progress is None:
                return
            elapsed = time.perf_counter() - start
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (len(tasks) - done) / rate if rate > 0 else None
            progress(Progress(done, len(tasks), report.embedded, report.reused, report.failed,
                              elapsed, rate, eta, current))  # fmt: skip

        pending: deque[Future] = deque()
        it = iter(tasks)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            try:
                for task in it:
                    pending.append(pool.submit(self._prepare, task, known, lock))
                    if len(pending) >= self.window:
                        break
                while pending:
                    if cancel is not None and cancel.is_set():
                        report.cancelled = True
                        break
                    while pause is not None and pause.is_set() and not (cancel and cancel.is_set()):
                        time.sleep(0.05)
                    t = time.perf_counter()
                    item = pending.popleft().result()
                    report.wait_s += time.perf_counter() - t
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.append(pool.submit(self._prepare, nxt, known, lock))
                    done += 1
                    if isinstance(item, _Decoded):
                        batch.append(item)
                    else:
                        side.append(item)
                    if len(batch) >= self.batch_size or len(side) >= 4 * self.batch_size:
                        flush()
                        report_progress(item.task.path)
                if not report.cancelled:
                    flush()
                    report_progress(None)
            finally:
                for f in pending:
                    f.cancel()
        report.elapsed_s = time.perf_counter() - start
        return report
