"""The engine process: `python -m engine.service.server [--data-dir D] [--model KEY]`.

Speaks engine.service.protocol over stdin/stdout (see that module for the protocol itself).
Threads, and why:

* the main thread reads requests and answers control calls (hello, pause, resume,
  cancel, shutdown) at once, so they never wait behind a slow search;
* a small pool answers quick calls (search, status, thumbnail ...);
* one writer thread runs indexing jobs and library-changing calls one at a time, so
  writes never overlap. A watcher change or a folder removal preempts a running scan
  (cancelled after the photo in hand, re-queued under the same job id; committed
  batches are never redone), but a scan runs at least ``MIN_RUN_S`` between preemptions;
* each model download runs on a thread of its own.

The tag and fine-tuning methods live in mixins (engine.service.tags, engine.service.train);
this file holds the engine's core: requests, jobs, the library, search and models.

Switching models (``use_model``) re-embeds the library in the background. Until that
scan ends, searches are answered by the previous model's library (its vectors are all
there), so a search never comes back half empty in the middle of a switch.

stdout carries protocol only: the real stdout is kept for it and file descriptor 1 is
pointed at stderr, so a stray print (ours or a native library's) cannot corrupt it.
SQLite commits every batch, so a kill -9 loses at most the batch in flight; the ANN
cache is saved on shutdown and caught up from SQLite otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from .. import __version__
from ..errors import (
    Cancelled,
    DatabaseError,
    DecodeError,
    ModelError,
    ModelNotAvailable,
    PhotosiftError,
    QueryError,
    TrainingDataError,
)
from ..store import thumbcache
from . import protocol as P
from .protocol import ErrorCode, ProtocolError
from .tags import TagMethods
from .train import TrainMethods

log = logging.getLogger("engine.service.server")

MAX_IN_FLIGHT = 64  # quick and writer requests waiting for a reply
PROGRESS_EVERY_S = 0.2
MIN_RUN_S = 5.0  # a scan runs at least this long before a watcher change preempts it
THUMB_SIZES = (16, 2048)  # up to a preview pane's size: the app shows RAW files through it
PRUNE_EVERY = 256  # new thumbnails between two checks of the cache's size
MAX_K = 1000
MAX_LIKE = 64


class _LibraryUnavailable(PhotosiftError):
    pass


def error_code(e: BaseException) -> str:
    """The protocol error code for an exception raised by a handler."""
    if isinstance(e, ProtocolError):
        return e.code
    for cls, code in (
        (_LibraryUnavailable, ErrorCode.LIBRARY_UNAVAILABLE),
        (QueryError, ErrorCode.QUERY_ERROR),
        (ModelNotAvailable, ErrorCode.MODEL_NOT_AVAILABLE),
        (ModelError, ErrorCode.MODEL_ERROR),
        (DatabaseError, ErrorCode.DATABASE_ERROR),
        (DecodeError, ErrorCode.DECODE_ERROR),
        (Cancelled, ErrorCode.CANCELLED),
        (TrainingDataError, ErrorCode.TRAINING_DATA),
        (PhotosiftError, ErrorCode.ENGINE_ERROR),
    ):
        if isinstance(e, cls):
            return code
    return ErrorCode.INTERNAL_ERROR


class Job:
    """One long piece of work with an id, reported through events."""

    def __init__(self, jid: str, kind: str, fn: Callable[[Job], dict], *, folders=(), model=None, prio=2):
        self.id, self.kind, self.fn, self.prio = jid, kind, fn, prio
        self.folders: list[str] = list(folders)
        self.model = model
        self.state = "queued"
        self.cancelled = False  # the user (or a removal) asked it to stop for good
        self.preempted = False  # stop for now; it is queued again
        self.run_cancel = threading.Event()  # what the running work watches
        self.seq = 0
        self.started_at = 0.0
        self.pause_clock_at_start = 0.0
        self.progress: dict | None = None
        self.last_sent = 0.0
        self.unit = None  # a watch job's watcher.Unit

    def info(self) -> dict:
        d: dict[str, Any] = dict(job=self.id, kind=self.kind, state=self.state, folders=self.folders,
                                 progress=self.progress)  # fmt: skip
        if self.model:
            d["model"] = self.model
        return d


class Engine(TagMethods, TrainMethods):
    def __init__(self, settings, model_key: str | None, out: BinaryIO, *, quick_workers: int = 4,
                 watch_options: dict | None = None):  # fmt: skip
        self.settings = settings
        self.model_key = model_key
        self._out = out
        self._out_lock = threading.Lock()
        self._lock = threading.RLock()
        self.lib = None
        self.lib_error: str | None = None
        # After a model switch: the previous model's library answers searches until the
        # re-embedding scan (_fallback_job) ends. _lib_users counts the searches running on a
        # library; one that is let go while searches run on it is closed by the last of them.
        self._fallback = None
        self._fallback_job: str | None = None
        self._lib_users: dict[int, int] = {}
        self._retired: dict[int, Any] = {}
        self.watcher = None
        self.watch_options = watch_options or {}
        self.ready = False
        self._watching = threading.Event()
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self._paused_since: float | None = None
        self._paused_total = 0.0
        self._pool = ThreadPoolExecutor(quick_workers, thread_name_prefix="quick")
        self._in_flight: set = set()
        self._jobs: dict[str, Job] = {}
        self._job_ids = itertools.count(1)
        self._job_prefix = os.urandom(3).hex()
        self._seq = itertools.count()
        self._wq: queue.PriorityQueue = queue.PriorityQueue()
        self._running: Job | None = None
        self._writer = threading.Thread(target=self._writer_loop, name="writer", daemon=True)
        self._instance, self._instance_error = None, None
        self._hold_data_dir()
        self._open_library()
        self._thumbs_made = itertools.count()
        if self._instance_error is None:
            self._sweep_training_runs()
            self._pool.submit(self._prune_thumbs)  # what earlier runs left over the budget
        self._writer.start()

    # -- output ----------------------------------------------------------------------------

    def send(self, msg: dict) -> None:
        data = P.encode(msg)
        with self._out_lock:
            try:
                self._out.write(data)
                self._out.flush()
            except (OSError, ValueError):  # the app went away: nobody to talk to
                if not self.stopping.is_set():
                    log.warning("cannot write to the app (pipe closed); shutting down")
                    self.stopping.set()

    def emit(self, name: str, data: Any, job: str | None = None) -> None:
        self.send(P.event(name, data, job))

    # -- library ---------------------------------------------------------------------------

    def _hold_data_dir(self) -> None:
        """Take the data folder's single-writer lock; without it the library stays closed."""
        from ..store.instance import InstanceLock

        try:
            self._instance = InstanceLock(self.settings.data_dir, "engine").acquire()
        except PhotosiftError as e:
            self._instance_error = str(e)
            log.error("%s", e)

    def _open_library(self) -> None:
        from ..library import Library

        if self._instance_error:  # another process has the library, or its folder is read-only
            self.lib, self.lib_error = None, self._instance_error
            return
        try:
            self.lib = Library(self.settings, model_key=self.model_key)
            self.lib_error = None
        except PhotosiftError as e:
            self.lib, self.lib_error = None, str(e)
            log.error("cannot open the library: %s", e)

    def _sweep_training_runs(self) -> None:
        """Runs a killed engine left half-done go at start (this engine holds the lock and has
        started no training yet, so none of them runs)."""
        from ..finetune.job import sweep_unfinished

        try:
            if gone := sweep_unfinished(self.settings):
                log.info("removed %d unfinished training run(s): %s", len(gone), ", ".join(gone))
        except OSError as e:  # a read-only data folder: the leftovers only cost disk space
            log.warning("could not remove unfinished training runs: %s", e)

    def library(self):
        lib = self.lib
        if lib is None:
            raise _LibraryUnavailable(self.lib_error or "the library is not open")
        return lib

    def _start_watching(self) -> None:
        from ..index.watcher import Watcher

        if self.lib is None:
            return
        self.watcher = Watcher(
            self.lib, run=self._queue_watch, on_applied=self._on_watch_applied,
            on_folder_state=lambda path, online: self.emit("folder_state", dict(path=path, online=online)),
            **self.watch_options,
        ).start()  # fmt: skip
        try:
            self.watcher.watch_all()
        except Exception:
            log.exception("cannot watch the library's folders")

    def _on_watch_applied(self, rep) -> None:
        self.emit("library_changed", dict(indexed=rep.indexed, removed=rep.removed + rep.gc, moved=rep.moved,
                                          failed=rep.failed, folders=sorted(rep.folders)))  # fmt: skip

    # -- requests --------------------------------------------------------------------------

    def handle_line(self, line: bytes) -> None:
        """One line from the app. Never raises: every problem becomes an error reply."""
        rid = None
        try:
            if not line.strip():
                return
            msg = P.decode_line(line)
            rid = msg.get("id") if isinstance(msg.get("id"), int | str) and not isinstance(msg.get("id"), bool) else None
            rid, method, params = P.parse_request(msg)
            self.dispatch(rid, method, params)
        except ProtocolError as e:
            self.send(P.error_reply(e.id if e.id is not None else rid, e.code, e.message))
        except Exception as e:  # a bug in dispatching: report it, keep serving
            log.error("error handling a request:\n%s", traceback.format_exc())
            self.send(P.error_reply(rid, ErrorCode.INTERNAL_ERROR, f"internal error: {type(e).__name__}: {e}"))

    def dispatch(self, rid, method: str, params: dict) -> None:
        if self.stopping.is_set():
            raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the engine is shutting down", rid)
        if method != "hello" and not self.ready:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello first (the protocol handshake)", rid)
        runs = P.METHODS[method][2]
        handler = getattr(self, "m_" + method)
        if runs == "control" or runs == "job":
            self._answer(rid, method, handler, params)
            return
        key = (type(rid), rid)
        with self._lock:
            if key in self._in_flight:
                raise ProtocolError(ErrorCode.DUPLICATE_ID, f"request id {rid!r} is already in flight", rid)
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                raise ProtocolError(ErrorCode.BUSY, f"{MAX_IN_FLIGHT} requests in flight; wait for replies", rid)
            self._in_flight.add(key)

        def run():
            try:
                self._answer(rid, method, handler, params)
            finally:
                with self._lock:
                    self._in_flight.discard(key)

        if runs == "quick":
            self._pool.submit(run)
        else:  # writer
            self._queue_writer(run, preempt=True)

    def _answer(self, rid, method: str, handler, params: dict) -> None:
        from .reqprogress import set_current

        set_current(rid)  # long requests report progress on this request's behalf
        try:
            result = handler(**params)
        except Exception as e:
            code = error_code(e)
            if code == ErrorCode.INTERNAL_ERROR:
                log.error("%s failed:\n%s", method, traceback.format_exc())
                msg = f"internal error in {method}: {type(e).__name__}: {e}"
            else:
                msg = getattr(e, "message", None) or str(e) or type(e).__name__
            self.send(P.error_reply(rid, code, msg))
            return
        self.send(P.reply(rid, result))

    # -- control methods ---------------------------------------------------------------------

    def m_hello(self, protocol: int, client: str = "") -> dict:
        if protocol != P.PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.VERSION_MISMATCH,
                f"this engine speaks protocol {P.PROTOCOL_VERSION}, the client {protocol}; "
                f"start the engine that came with the app",
            )
        log.info("hello from %s", client or "a client")
        model, model_error = None, None
        if self.lib is not None:
            try:
                model = self._model_info(self.lib.spec)
            except PhotosiftError as e:
                model_error = str(e)
        first = not self.ready
        self.ready = True
        if first and self.lib is not None:
            # Catch up with what changed while no engine ran, and finish any interrupted scan.
            if self.lib.db.folders():
                self._new_scan([], note="catch-up")
            # Setting up OS watches walks every folder: not on the reading thread.
            threading.Thread(target=self._after_hello, name="startup", daemon=True).start()
        elif first:
            self._watching.set()  # no library: nothing to watch, and nothing may wait for watches
        return dict(engine_version=__version__, protocol=P.PROTOCOL_VERSION, pid=os.getpid(),
                    data_dir=str(self.settings.data_dir), model=model, model_error=model_error,
                    library_error=self.lib_error)  # fmt: skip

    def _after_hello(self) -> None:
        self._warm_up()  # first: the window's first search waits for it; watches can wait
        try:
            self._start_watching()
        except Exception:
            log.exception("could not start watching the folders")
        finally:
            self._watching.set()

    def _warm_up(self) -> None:
        """Load the text tower and the ANN cache now, so the first search does not wait for
        them (the image tower loads when a photo needs embedding)."""
        try:
            lib = self.library()
            lib.model().load_text()
            lib.ann()
        except Exception as e:
            log.info("model not loaded yet: %s", e)

    def m_ping(self) -> dict:
        return {"pong": True}

    def m_pause(self) -> dict:
        with self._lock:
            if not self.paused.is_set():
                self._paused_since = time.monotonic()
                self.paused.set()
        self.emit("pause_state", {"paused": True})
        return {"paused": True}

    def m_resume(self) -> dict:
        with self._lock:
            if self.paused.is_set():
                self._paused_total += time.monotonic() - (self._paused_since or time.monotonic())
                self._paused_since = None
                self.paused.clear()
        self.emit("pause_state", {"paused": False})
        return {"paused": False}

    def _pause_clock(self) -> float:
        """Seconds spent paused since the engine started (for rates that ignore pauses)."""
        with self._lock:
            extra = time.monotonic() - self._paused_since if self._paused_since is not None else 0.0
            return self._paused_total + extra

    def m_cancel(self, job: str) -> dict:
        with self._lock:
            j = self._jobs.get(job)
            if j is None:
                raise ProtocolError(ErrorCode.NO_SUCH_JOB, f"no job {job!r}")
            if j.state not in ("queued", "running"):
                return {"cancelled": False}
            j.cancelled = True
            j.run_cancel.set()
            was_queued = j.state == "queued"
            if was_queued:
                j.state = "cancelled"
        if was_queued:
            if j.unit is not None:
                j.unit.drop()
            if j.id == self._fallback_job:
                self._retire_fallback()
            self.emit("job_done", dict(kind=j.kind, cancelled=True), j.id)
        return {"cancelled": True}

    def m_shutdown(self) -> dict:
        self.stopping.set()
        return {"ok": True}

    # -- jobs ------------------------------------------------------------------------------

    def _new_job(self, kind: str, fn, **kw) -> Job:
        with self._lock:
            # Unique across engine restarts too, so an app never mixes up an old job with a new one.
            job = Job(f"{self._job_prefix}-{next(self._job_ids)}", kind, fn, **kw)
            self._jobs[job.id] = job
            if len(self._jobs) > 200:  # forget old finished jobs
                for jid in [k for k, v in self._jobs.items() if v.state not in ("queued", "running")][:100]:
                    del self._jobs[jid]
        return job

    def _queue_job(self, job: Job) -> None:
        job.seq = next(self._seq)
        self._wq.put((job.prio, job.seq, job))

    def _queue_writer(self, fn: Callable[[], None], *, preempt: bool) -> None:
        self._wq.put((0, next(self._seq), fn))
        if preempt:
            self._preempt_running(at_once=True)

    def _preempt_running(self, *, at_once: bool) -> None:
        with self._lock:
            job = self._running
        # A watch job stops for a library-changing call only (its batch goes back to the watcher).
        if job is None or (job.kind != "scan" and not (at_once and job.kind == "watch")):
            return
        wait = 0.0 if at_once else max(0.0, job.started_at + MIN_RUN_S - time.monotonic())

        def go():
            with self._lock:
                if self._running is job and not job.run_cancel.is_set():
                    job.preempted = True
                    job.run_cancel.set()

        if wait <= 0:
            go()
        else:
            t = threading.Timer(wait, go)
            t.daemon = True
            t.start()

    def _new_scan(self, folders: list[str], note: str = "") -> Job:
        def fn(job: Job) -> dict:
            # Scan only once the folders are watched: a change between the two is not lost.
            self._watching.wait(120)
            rep = self.library().scan(job.folders or None, progress=self._progress_cb(job),
                                      cancel=job.run_cancel, pause=self.paused)  # fmt: skip
            return dict(kind="scan", cancelled=rep.cancelled, total=rep.total, embedded=rep.embedded,
                        reused=rep.reused, unchanged=rep.unchanged, failed=rep.failed, removed=rep.removed,
                        offline=rep.offline or [], elapsed_s=round(rep.elapsed_s, 3),
                        failures=[dict(path=p, reason=r) for p, r in rep.failures[:100]])  # fmt: skip

        job = self._new_job("scan", fn, folders=folders, prio=2)
        if note:
            log.info("queued %s scan %s", note, job.id)
        self._queue_job(job)
        return job

    def _queue_watch(self, work) -> None:
        """The watcher hands us a unit of work: run it with the other indexing work."""

        def fn(job: Job) -> dict:
            rep = work(progress=self._progress_cb(job), cancel=job.run_cancel, pause=self.paused)
            return dict(kind="watch", cancelled=rep.cancelled, total=rep.indexed, embedded=rep.embedded,
                        reused=rep.reused, moved=rep.moved, removed=rep.removed + rep.gc, failed=rep.failed,
                        offline=rep.offline, folders=sorted(rep.folders),
                        failures=[dict(path=p, reason=r) for p, r in rep.failures[:100]])  # fmt: skip

        job = self._new_job("watch", fn, prio=1)
        job.unit = work  # dropped (given back to the watcher) if the job never runs
        self._queue_job(job)
        self._preempt_running(at_once=False)

    def _progress_cb(self, job: Job):
        def cb(p) -> None:
            now = time.monotonic()
            active = max(1e-6, (now - job.started_at) - (self._pause_clock() - job.pause_clock_at_start))
            rate = p.done / active
            eta = (p.total - p.done) / rate if rate > 0 else None
            job.progress = dict(done=p.done, total=p.total, unit="files", embedded=p.embedded, reused=p.reused,
                                failed=p.failed, rate=round(rate, 3), eta_s=None if eta is None else round(eta, 1),
                                elapsed_s=round(now - job.started_at, 3), current=p.current,
                                paused=self.paused.is_set())  # fmt: skip
            if now - job.last_sent >= PROGRESS_EVERY_S or p.done >= p.total:
                job.last_sent = now
                self.emit("progress", job.progress, job.id)

        return cb

    def _writer_loop(self) -> None:
        while True:
            _prio, _seq, item = self._wq.get()
            if item is None:
                return
            try:
                if isinstance(item, Job):
                    self._run_job(item)
                else:
                    item()
            except Exception:  # a bug here must not stop all indexing for the session
                log.exception("writer: unexpected error")

    def _run_job(self, job: Job) -> None:
        with self._lock:
            if job.state != "queued":
                return  # cancelled while queued
            if self.stopping.is_set():
                job.state = "cancelled"
                if job.unit is not None:
                    job.unit.drop()
                return
            first = job.started_at == 0.0
            job.state = "running"
            job.started_at = time.monotonic()
            job.pause_clock_at_start = self._pause_clock()
            job.preempted = False
            job.run_cancel.clear()
            if job.cancelled:
                job.run_cancel.set()
            writer = job.kind not in ("download", "train")  # these run on threads of their own
            if writer:
                self._running = job
        if first:
            self.emit("job_started", job.info(), job.id)
        try:
            result = job.fn(job)
        except Exception as e:
            self._finish(job, failed=e)
            return
        finally:
            if writer:
                with self._lock:
                    self._running = None
        with self._lock:
            again = job.kind == "scan" and job.preempted and not job.cancelled and not self.stopping.is_set()
            if again:
                job.state = "queued"
        if again:
            self._wq.put((job.prio, job.seq, job))  # same place in the queue as before
            return
        self._finish(job, result=result)

    def _finish(self, job: Job, *, result: dict | None = None, failed: BaseException | None = None) -> None:
        if job.id == self._fallback_job:
            self._retire_fallback()  # re-embedded (or given up): the active model answers from now on
        if failed is not None and isinstance(failed, Cancelled):
            failed, result = None, dict(kind=job.kind, cancelled=True)
        if failed is not None:
            code = error_code(failed)
            if code == ErrorCode.INTERNAL_ERROR:
                log.error("job %s failed:\n%s", job.id, "".join(traceback.format_exception(failed)))
            job.state = "failed"
            self.emit("job_failed", dict(code=code, message=str(failed) or type(failed).__name__), job.id)
            return
        assert result is not None
        result["cancelled"] = bool(result.get("cancelled")) or job.cancelled
        job.state = "cancelled" if result["cancelled"] else "done"
        self.emit("job_done", result, job.id)

    # -- folders and scanning ----------------------------------------------------------------

    def _known_folder(self, path: str) -> str:
        from ..index.scan import normalize_folder

        p = normalize_folder(path)
        if self.library().db.folder_id(p) is None:
            raise QueryError(f"{path} is not one of the library's folders")
        return p

    def m_add_folder(self, path: str, poll: bool = False, scan: bool = True) -> dict:
        lib = self.library()
        folder = lib.add_folder(path, poll=poll)
        if self.watcher is not None:
            self.watcher.watch(folder, poll=poll)
        job = self._new_scan([folder]) if scan else None
        return dict(folder=folder, job=job.id if job else None)

    def m_remove_folder(self, path: str) -> dict:
        folder = self._known_folder(path)
        if self.watcher is not None:
            self.watcher.unwatch(folder)
        with self._lock:  # scans of only this folder have nothing left to do
            doomed = [j for j in self._jobs.values() if j.kind == "scan" and j.folders == [folder]
                      and j.state in ("queued", "running")]  # fmt: skip
        for j in doomed:
            self.m_cancel(j.id)
        self.library().remove_folder(folder)
        return dict(folder=folder)

    def m_scan(self, folders: list[str] | None = None) -> dict:
        chosen = [self._known_folder(f) for f in folders or []]
        return dict(job=self._new_scan(chosen).id)

    def m_status(self) -> dict:
        lib = self.library()
        st = lib.status()
        watched = self.watcher.watched() if self.watcher is not None else {}
        folders = [dict(id=f["id"], path=f["path"], online=bool(f["online"]), poll=bool(f["poll"]),
                        last_scan=f["last_scan"], files=f["files"], failures=f["failures"],
                        watched=f["path"] in watched and watched[f["path"]] != "offline")
                   for f in st["folders_detail"]]  # fmt: skip
        with self._lock:
            jobs = [j.info() for j in self._jobs.values() if j.state in ("queued", "running")]
            fallback = self._fallback
        search_model = st["model"].get("key")
        if fallback is not None:
            with contextlib.suppress(PhotosiftError):
                search_model = fallback.spec.key
        return dict(folders=folders, files=st["files"], images=st["images"], failures=st["failures"],
                    offline_folders=st["offline_folders"], vectors=st["vectors"], model=st["model"],
                    search_model=search_model, paused=self.paused.is_set(), jobs=jobs)  # fmt: skip

    def m_failures(self, folder: str | None = None) -> dict:
        db = self.library().db
        fid = db.folder_id(self._known_folder(folder)) if folder else None
        return dict(failures=db.failures(fid))

    # -- search ----------------------------------------------------------------------------

    def _filters(self, f: dict | None):
        from ..search import Filters

        f = f or {}
        return Filters(folders=[os.path.realpath(os.path.expanduser(p)) for p in f.get("folders", [])],
                       date_from=f.get("date_from"), date_to=f.get("date_to"), exts=f.get("exts", []),
                       tags=[(t["vocab"], t["label"]) for t in f.get("tags", [])])  # fmt: skip

    @staticmethod
    def _check_k(k: int) -> int:
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}")
        return k

    @staticmethod
    def _like(items: list) -> list:
        if len(items) > MAX_LIKE:
            raise QueryError(f"at most {MAX_LIKE} example photos")
        return [i if isinstance(i, int) else os.path.abspath(os.path.expanduser(i)) for i in items]

    @contextlib.contextmanager
    def _search_library(self):
        """The library that answers searches: the previous model's while a switch re-embeds."""
        with self._lock:
            lib = self._fallback or self.lib
            if lib is not None:
                self._lib_users[id(lib)] = self._lib_users.get(id(lib), 0) + 1
        if lib is None:
            yield self.library()  # raises library_unavailable
            return
        try:
            yield lib
        finally:
            with self._lock:
                n = self._lib_users[id(lib)] = self._lib_users[id(lib)] - 1
                done = self._retired.pop(id(lib), None) if n == 0 else None
                if n == 0:
                    del self._lib_users[id(lib)]
            if done is not None:
                self._close_library(done)

    def _close_when_idle(self, lib) -> None:
        """Close a library no longer in use, now or when the last search running on it ends."""
        with self._lock:
            if self._lib_users.get(id(lib)):
                self._retired[id(lib)] = lib
                return
        self._close_library(lib)

    def _retire_fallback(self) -> None:
        with self._lock:
            lib, self._fallback, self._fallback_job = self._fallback, None, None
        if lib is not None and lib is not self.lib:
            log.info("searches now use the active model's vectors")
            self._close_when_idle(lib)

    @staticmethod
    def _close_library(lib) -> None:
        try:
            lib.close()
        except Exception:
            log.exception("could not close a library (its ANN cache is rebuilt from SQLite)")

    def _hits(self, q) -> dict:
        with self._search_library() as lib:
            hits = lib.search(q)
        return dict(hits=[dict(image_id=h.image_id, score=round(float(h.score), 6), path=h.path,
                               online=h.online, metadata=h.info) for h in hits])  # fmt: skip

    def m_search(self, text: str = "", like=(), negatives=(), filters=None, k: int = 50,
                 text_weight: float = 1.0, like_weight: float = 1.0, negative_weight: float = 0.5) -> dict:  # fmt: skip
        from ..search import Query

        q = Query(text=text, like=self._like(list(like)), negatives=list(negatives), filters=self._filters(filters),
                  k=self._check_k(k), text_weight=text_weight, like_weight=like_weight,
                  negative_weight=negative_weight)  # fmt: skip
        return self._hits(q)

    def m_similar(self, photo, text: str = "", negatives=(), filters=None, k: int = 50) -> dict:
        from ..search import Query

        q = Query(text=text, like=self._like([photo]), negatives=list(negatives), filters=self._filters(filters),
                  k=self._check_k(k))  # fmt: skip
        return self._hits(q)

    def m_photo_info(self, path: str | None = None, image_id: int | None = None) -> dict:
        from ..photos.decode import read_meta

        db = self.library().db
        if (path is None) == (image_id is None):
            raise QueryError("photo_info needs a path or an image_id (one of them)")
        if image_id is None:
            path = os.path.abspath(os.path.expanduser(path))
            image_id = db.image_id_for_path(path)
            if image_id is None:
                raise QueryError(f"{path} is not in the library (yet)")
        info = db.describe_images([image_id]).get(image_id)
        if info is None:
            raise QueryError(f"no photo with id {image_id} in the library")
        if path is not None and info["path"] != path:  # asked for one of its other paths
            info["other_paths"] = [p for p in [info["path"], *info["other_paths"]] if p != path]
            info["path"] = path
        gps, keywords, orientation = None, [], None
        if info["online"]:
            try:
                meta = read_meta(info["path"])
                gps, keywords, orientation = meta.gps, list(meta.keywords), meta.orientation
            except (DecodeError, OSError):
                pass  # the stored metadata still stands
        tags = []
        with contextlib.suppress(PhotosiftError):  # tags are extra: photo_info answers without them
            tags = [{k: v for k, v in t.items() if k != "tagged"}
                    for t in self.library().tagger().photo_tags(image_id)]  # fmt: skip
        return dict(info, gps=list(gps) if gps else None, keywords=keywords, orientation=orientation, tags=tags)

    def m_thumbnail(self, path: str, size: int = 256) -> dict:
        from PIL import Image

        from ..photos.decode import decode_photo

        if not THUMB_SIZES[0] <= size <= THUMB_SIZES[1]:
            raise QueryError(f"thumbnail size must be between {THUMB_SIZES[0]} and {THUMB_SIZES[1]}")
        path = os.path.abspath(os.path.expanduser(path))
        try:
            st = os.stat(path)
        except OSError as e:
            raise QueryError(f"{path} cannot be read: {e.strerror or e}") from None
        out = thumbcache.thumb_file(self.settings.data_dir, path, st, size)
        if out.is_file():
            try:
                with Image.open(out) as im:
                    thumbcache.mark_used(out)
                    return dict(path=str(out), width=im.width, height=im.height)
            except OSError:
                pass  # a damaged cache file: make it again
        photo = decode_photo(path, target=(size, size))
        im = photo.image
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{threading.get_ident()}.tmp")
        im.save(tmp, "JPEG", quality=85)
        os.replace(tmp, out)  # atomic: a reader never sees half a thumbnail
        if next(self._thumbs_made) % PRUNE_EVERY == PRUNE_EVERY - 1:
            self._pool.submit(self._prune_thumbs)
        return dict(path=str(out), width=im.width, height=im.height)

    def _prune_thumbs(self) -> None:
        """Keep the thumbnail cache within its budget (least recently used go first)."""
        budget = int(self.settings.thumb_cache_mb) * 1024 * 1024
        try:
            removed, freed = thumbcache.prune(self.settings.data_dir, budget)
        except Exception:  # cache housekeeping must never take the engine down
            log.exception("pruning the thumbnail cache failed")
            return
        if removed:
            log.info("thumbnail cache: removed %d old thumbnails (%.1f MB)", removed, freed / 2**20)

    # -- models ----------------------------------------------------------------------------

    def _model_info(self, spec, active: bool | None = None) -> dict:
        from ..models.hub import local_model_folder

        d = dict(key=spec.key, name=spec.name, family=spec.family, embed_dim=spec.embed_dim,
                 size_mb=spec.size_mb, license=spec.license,
                 here=local_model_folder(spec, self.settings) is not None)  # fmt: skip
        if active is not None:
            d["active"] = active
        d["recommended"] = spec.recommended
        if spec.preprocess.resize_mode == "naflex":  # the app offers the patch budget
            from ..models.naflex import BUDGETS

            budget = (self.settings.max_patches or {}).get(spec.key)
            d["max_patches"] = budget or spec.preprocess.max_patches
            d["max_patches_choices"] = list(BUDGETS)
        return d

    def m_models_list(self) -> dict:
        from ..models.hub import full_registry

        try:
            current = self.lib.spec.key if self.lib is not None else self.settings.model
        except PhotosiftError:
            current = self.settings.model
        return dict(models=[self._model_info(s, s.key == current) for s in full_registry(self.settings)])

    def m_use_model(self, key: str) -> dict:
        from ..models.hub import full_registry, local_model_folder

        spec = full_registry(self.settings).get(key)
        if local_model_folder(spec, self.settings) is None:
            # Refused before anything changes: the library keeps searching with the model it has.
            raise ModelNotAvailable(
                f"model {key!r} is not on this machine yet: download or import it first"
            )
        with self._lock:
            # What answers searches while `key` re-embeds (and during the switch itself): an
            # earlier fallback, complete, if a switch was still re-embeding; else the library
            # in use until now.
            earlier = self._fallback
            keep = earlier or self.lib
            self._fallback, self._fallback_job = keep, None
            doomed = [j for j in self._jobs.values()
                      if j.kind in ("scan", "watch") and j.state in ("queued", "running")]  # fmt: skip
        for j in doomed:
            self.m_cancel(j.id)
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        old = self.lib
        self.settings.model = key
        self.settings.save()
        self.model_key = key
        self._open_library()
        rescan = self.ready and self.lib is not None and bool(self.lib.db.folders())
        if keep is not None and not (rescan and self._can_answer_for(keep, spec)):
            keep = None
        job = None
        if self.ready and self.lib is not None:
            self._start_watching()
            if rescan:
                # Queued behind this call (both run on the writer thread): it cannot end before
                # the fallback below is in place.
                job = self._new_scan([], note="model change")
        with self._lock:
            if keep is not None and job is not None:
                self._fallback, self._fallback_job = keep, job.id
            else:
                self._fallback, self._fallback_job = None, None
        for lib in {id(x): x for x in (old, earlier) if x is not None}.values():
            if lib is not keep:
                self._close_when_idle(lib)
        return dict(model=self._model_info(spec, True))

    def _can_answer_for(self, lib, spec) -> bool:
        """Whether `lib` (the previous model) should answer searches while `spec` re-embeds:
        its image space differs from the new one and holds vectors."""
        try:
            space = lib.spec.space
            new_space = self.lib.spec.space  # the new library's, patch budget included
            return space != new_space and self.lib.db.vectors_per_space().get(space, 0) > 0
        except PhotosiftError:
            return False

    def m_set_max_patches(self, key: str, max_patches: int | None = None) -> dict:
        """A NaFlex model's patch budget per photo (null: the registry's). Another budget is
        another image space: for the active model the library is re-embedded in the
        background, with the previous vectors answering searches meanwhile (as use_model)."""
        from ..models.hub import full_registry
        from ..models.naflex import BUDGETS

        spec = full_registry(self.settings).get(key)
        if spec.preprocess.resize_mode != "naflex":
            raise QueryError(f"model {key!r} is not a NaFlex model: it has no patch budget")
        if max_patches is not None and max_patches not in BUDGETS:
            raise QueryError(f"max_patches must be one of {', '.join(map(str, BUDGETS))}, not {max_patches!r}")
        budgets = dict(self.settings.max_patches or {})
        if max_patches is None or max_patches == spec.preprocess.max_patches:
            budgets.pop(key, None)
        else:
            budgets[key] = max_patches
        self.settings.max_patches = budgets
        self.settings.save()
        if self.lib is not None and self.lib.spec.key == key:
            return self.m_use_model(key)
        return dict(model=self._model_info(spec, False))

    def m_download_size(self, key: str) -> dict:
        """What a download of ``key`` costs: the bytes of the files its layout needs, from the
        hub's listing of the repo (one request), or the registry's estimate where the model
        comes some other way."""
        from ..models.hub import full_registry
        from ..models.install import download_plan

        spec = full_registry(self.settings).get(key)
        if spec.source.layout == "photosift" or not spec.source.hf_repo:
            return dict(bytes=int((spec.size_mb or 0) * 1e6), files=0, exact=False)
        plan = download_plan(spec, endpoint=os.environ.get("HF_ENDPOINT") or None)
        return dict(bytes=sum(s or 0 for s in plan.values()), files=len(plan), exact=True)

    def m_download_model(self, key: str, use: bool = False) -> dict:
        from ..models.hub import full_registry, import_model_folder, local_model_folder

        full_registry(self.settings).get(key)  # unknown key: an error reply now, not a failed job

        def fn(job: Job) -> dict:
            started = time.monotonic()

            def cb(p) -> None:
                now = time.monotonic()
                rate = p.done / max(1e-6, now - started)
                eta = (p.total - p.done) / rate if p.total and rate > 0 else None
                job.progress = dict(done=p.done, total=p.total or 0, unit="bytes", embedded=0, reused=0,
                                    failed=0, rate=round(rate, 1), eta_s=None if eta is None else round(eta, 1),
                                    elapsed_s=round(now - started, 3), current=p.file, paused=False)  # fmt: skip
                if now - job.last_sent >= PROGRESS_EVERY_S:
                    job.last_sent = now
                    self.emit("progress", job.progress, job.id)

            folder = self.library().download_model(key, progress=cb, cancel=job.run_cancel)
            spec = full_registry(self.settings).get(key)
            if local_model_folder(spec, self.settings) is None:
                # A ready ONNX folder from the hub lands in the HF cache, where the model
                # lookup does not look: check it and copy it into the models folder.
                import_model_folder(folder, self.settings)
                folder = local_model_folder(spec, self.settings) or folder
            result = dict(kind="download", cancelled=False, folder=str(folder))
            if use:  # e.g. the first real model: real-photo search with no other step
                result["model"] = self._on_writer(lambda: self.m_use_model(key))["model"]
            return result

        job = self._new_job("download", fn, model=key)
        job.state = "queued"
        threading.Thread(target=self._run_job, args=(job,), name=f"download-{job.id}", daemon=True).start()
        return dict(job=job.id)

    def _on_writer(self, fn: Callable[[], dict]) -> dict:
        """Run ``fn`` on the writer thread (where library-changing calls run) and wait for it."""
        done, box = threading.Event(), {}

        def run() -> None:
            try:
                box["result"] = fn()
            except BaseException as e:  # handed to the waiting thread
                box["error"] = e
            finally:
                done.set()

        self._queue_writer(run, preempt=True)
        while not done.wait(0.5):
            if self.stopping.is_set():
                raise Cancelled("the engine is shutting down")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def m_import_model(self, folder: str, key: str | None = None) -> dict:
        from ..models.hub import import_model_folder

        spec = import_model_folder(Path(folder), self.settings, key=key)
        return dict(model=self._model_info(spec, False))

    # -- shutting down -----------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop jobs after the photo in hand, save the ANN cache, close the database."""
        self.stopping.set()
        with self._lock:
            for j in self._jobs.values():
                if j.state in ("queued", "running"):
                    j.cancelled = True
                    j.run_cancel.set()
        if self.ready:
            self._watching.wait(5.0)  # the startup thread may still be setting the watcher up
        if self.watcher is not None:
            self.watcher.stop(timeout=2.0)
        self.paused.clear()
        self._wq.put((-1, -1, None))
        self._writer.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            others = [x for x in (self._fallback, *self._retired.values())
                      if x is not None and x is not self.lib]  # fmt: skip
            self._fallback = None
            self._retired.clear()
        for lib in others:
            self._close_library(lib)
        if self.lib is not None:
            try:
                self.lib.close()
            except Exception:
                log.exception("could not save the ANN cache (it is rebuilt from SQLite next time)")
        if self._instance is not None:
            self._instance.release()


class _Stop(BaseException):
    """SIGTERM: raised in the main thread. A BaseException, so that the handlers that turn
    every Exception into an error reply cannot swallow it and keep the engine running."""


def serve(engine: Engine, inp: BinaryIO) -> None:
    """Read requests until stdin closes or shutdown; memory per line is bounded."""
    while not engine.stopping.is_set():
        line = inp.readline(P.MAX_LINE_BYTES + 1)
        if not line:
            return  # the app closed our stdin (or died): time to go
        if len(line) > P.MAX_LINE_BYTES:
            rid = P.sniff_id(line[:256])
            while not line.endswith(b"\n"):  # throw away the rest of it, in bounded pieces
                line = inp.readline(1 << 20)
                if not line:
                    break
            engine.send(P.error_reply(rid, ErrorCode.TOO_LARGE, f"message over {P.MAX_LINE_BYTES} bytes; ignored"))
            continue
        engine.handle_line(line)


def main(argv: list[str] | None = None) -> int:
    from ..settings import Settings

    ap = argparse.ArgumentParser(prog="python -m engine.service.server", description="photosift engine process (JSON lines on stdin/stdout)")
    ap.add_argument("--data-dir", type=Path, help="library location (default: $PHOTOSIFT_HOME or the user-data folder)")
    ap.add_argument("--model", help="model key (default: the configured one, else the best one here)")
    ap.add_argument("--log-level", default=os.environ.get("PHOTOSIFT_LOG", "INFO"))
    ap.add_argument("--watch-quiet", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--watch-grace", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    # Keep the real stdout for the protocol; everything else written to fd 1 goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s engine[%(process)d] %(levelname)s %(name)s: %(message)s")  # fmt: skip
    # Ctrl-C in a terminal belongs to the app; the engine stops when its stdin closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(*_):
        raise _Stop

    signal.signal(signal.SIGTERM, on_term)
    settings = Settings.load(args.data_dir)
    if args.model:
        settings.model = args.model
    watch = {}
    if args.watch_quiet is not None:
        watch["quiet_s"] = args.watch_quiet
    if args.watch_grace is not None:
        watch["grace_s"] = args.watch_grace
    engine = Engine(settings, args.model, out, watch_options=watch)
    try:
        serve(engine, sys.stdin.buffer)
    except _Stop:
        log.info("terminated; shutting down")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            engine.close()
        except Exception:
            log.exception("error while shutting down (the database is safe: every batch was committed)")
        log.info("engine stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
