"""The engine's job machinery: long work as jobs with ids that report through events, and the
writer thread that runs indexing and library-changing calls one at a time.

A mixin of :class:`engine.service.server.Engine` (which finds handlers by their ``m_`` names):
``pause``, ``resume`` and ``cancel``; queueing scans, the watcher's work and writer calls; running
a job to its ``job_done`` or ``job_failed``. :class:`Job` and :func:`error_code` live here so that
every handler group can use them without importing the server.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

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
from .protocol import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.2
MIN_RUN_S = 5.0  # a scan runs at least this long before a watcher change preempts it


class LibraryUnavailable(PhotosiftError):
    pass


def error_code(e: BaseException) -> str:
    """The protocol error code for an exception raised by a handler."""
    if isinstance(e, ProtocolError):
        return e.code
    for cls, code in (
        (LibraryUnavailable, ErrorCode.LIBRARY_UNAVAILABLE),
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


class JobMethods:
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
