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

The methods come in groups, mixins of :class:`Engine`: the job machinery (engine.service.jobs),
photos and search (.photos), models (.models), tags (.tags) and fine-tuning (.train); this
file holds the engine's core: requests, the library, the handshake, folders, shutting down.

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
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from .. import __version__
from ..errors import PhotosiftError, QueryError
from . import protocol as P
from .jobs import Job, JobMethods, LibraryUnavailable, error_code
from .models import ModelMethods
from .photos import PhotoMethods
from .protocol import ErrorCode, ProtocolError
from .tags import TagMethods
from .train import TrainMethods

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64  # quick and writer requests waiting for a reply


class Engine(JobMethods, PhotoMethods, ModelMethods, TagMethods, TrainMethods):
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
            raise LibraryUnavailable(self.lib_error or "the library is not open")
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
            lib.model().load_text(quick_first=True)  # the repacked tower follows
            lib.ann()
        except Exception as e:
            log.info("model not loaded yet: %s", e)

    def m_ping(self) -> dict:
        return {"pong": True}

    def m_shutdown(self) -> dict:
        self.stopping.set()
        return {"ok": True}

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

    # -- which library answers searches (the previous model's while a switch re-embeds) ------

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
    """Read requests until stdin closes or shutdown; memory per line is bounded.

    The reading happens on a thread of its own, while this (the main) thread waits in short
    steps: Linux hands a process's SIGTERM to any of its threads, and Python runs its handler
    on the main thread only when that thread runs Python code, which a thread blocked reading
    stdin does not (seen: 3 engines in 20 ignored a SIGTERM until their stdin closed)."""
    over = threading.Event()

    def read() -> None:
        try:
            _read_requests(engine, inp)
        finally:
            over.set()

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while not over.wait(0.2) and not engine.stopping.is_set():
        pass


def _read_requests(engine: Engine, inp: BinaryIO) -> None:
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
        # A reader of its own on a copy of stdin: the reading thread may still wait in it when
        # the process ends, and Python's shutdown must not find sys.stdin locked by it.
        serve(engine, os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=1 << 16))
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
