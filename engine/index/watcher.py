"""Keeping the index in step with watched folders: watchdog events, debounced, then reconciled.

Events are only hints. A burst of them is collected until the folder has been quiet
for ``quiet_s`` (or ``max_wait_s`` has passed since the first one), and then every
path they name is *reconciled*: its current ``stat`` is compared with the database,
and the database is made to match. Because each batch is taken after the events it
holds, and applied after it is taken, the last batch that names a path sees that
path's final state: the index converges to the file system whatever order, loss of
pairing or duplication the events arrive with.

* created / modified / closed / attrib: the file is (re)indexed if its size or mtime
  differ from what is stored (content already known: the vector is reused).
* moved: if the stored row of the source matches the destination's stat, the row is
  re-pointed (``LibraryDB.move_file``) and nothing is read; both paths are then
  reconciled like any other.
* deleted: the file row goes; the photo (and its vector) is kept for ``grace_s`` so a
  delete + create pair (an editor's atomic save, a move between two watched folders)
  finds its vector again instead of re-embedding.
* Anything to do with directories, an inotify queue overflow, or more than
  ``max_paths`` pending paths for one folder: a stat-only rescan of that folder.
* A folder that cannot be reached any more goes offline (kept, not emptied); it is
  checked every ``offline_check_s`` and rescanned when it comes back.

Hidden paths (any component starting with ".") and non-photo extensions are ignored,
as the scanner ignores them. Each folder gets its own watchdog observer: OS events
(inotify, FSEvents, ReadDirectoryChangesW), or polling for folders marked ``poll``
(network shares, where OS events are unreliable) and wherever OS events fail (for
example inotify's watch limit).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..store.db import FileRow
from .scan import FileTask, folder_reachable, photo_extensions, storable

log = logging.getLogger(__name__)

DEFAULT_QUIET_S = 0.5
DEFAULT_MAX_WAIT_S = 3.0
DEFAULT_GRACE_S = 120.0
DEFAULT_POLL_INTERVAL_S = 5.0


@dataclass
class WatchReport:
    """What one applied batch changed."""

    indexed: int = 0  # files (re)indexed, embedded or reused
    embedded: int = 0
    reused: int = 0
    moved: int = 0  # re-pointed without reading the file
    removed: int = 0  # file rows dropped
    failed: int = 0
    gc: int = 0  # photos forgotten after their grace period
    rescanned: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    folders: set[str] = field(default_factory=set)
    cancelled: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.indexed or self.moved or self.removed or self.failed or self.gc or self.rescanned)


@dataclass
class Batch:
    """Paths named by events, per watched root, waiting to be reconciled."""

    dirty: dict[str, set[str]] = field(default_factory=dict)
    moves: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    rescan: set[str] = field(default_factory=set)
    gc: bool = False
    first_at: float = 0.0
    last_at: float = 0.0

    def empty(self) -> bool:
        return not (self.dirty or self.moves or self.rescan or self.gc)

    def size(self, root: str) -> int:
        return len(self.dirty.get(root, ())) + len(self.moves.get(root, ()))

    def merge(self, other: Batch) -> None:
        for r, s in other.dirty.items():
            self.dirty.setdefault(r, set()).update(s)
        for r, m in other.moves.items():
            self.moves.setdefault(r, []).extend(m)
        self.rescan |= other.rescan
        self.gc |= other.gc


class Unit:
    """One batch of changes handed out to be applied: call it once, or drop() it."""

    def __init__(self, watcher: Watcher, batch: Batch):
        self._watcher, self._batch = watcher, batch
        self._lock = threading.Lock()
        self._taken = False

    def _take(self) -> bool:
        with self._lock:
            taken, self._taken = self._taken, True
            return not taken

    def __call__(self, progress=None, cancel=None, pause=None) -> WatchReport:
        if not self._take():
            raise RuntimeError("a watcher batch can only be applied once")
        try:
            return self._watcher.apply(self._batch, progress=progress, cancel=cancel, pause=pause)
        finally:
            self._watcher._unit_over(None)

    def drop(self) -> None:
        """It will not be applied (its job was cancelled): the watcher takes it back."""
        if self._take():
            self._watcher._unit_over(self._batch)


class _Handler:
    """watchdog event handler for one root (duck-typed: watchdog only calls dispatch)."""

    def __init__(self, watcher: Watcher, root: str):
        self.watcher, self.root = watcher, root

    def dispatch(self, event) -> None:
        try:
            self.watcher._on_event(self.root, event)
        except Exception:  # never let a bad event kill watchdog's thread
            log.exception("watcher: cannot handle %r", event)


class _OverflowLog(logging.Handler):
    """inotify dropped events (its queue overflowed): only a rescan can tell what changed."""

    def __init__(self, watcher: Watcher):
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher._rescan_native()


class Watcher:
    """Watches the library's folders and applies what changes in them.

    `run`, when given, is handed each :class:`Unit` of work, a callable taking
    ``(progress=None, cancel=None, pause=None)`` and returning a WatchReport, and must
    either call it once or ``drop()`` it (the engine server queues it with its other
    indexing work, so writes never overlap). Without `run`, work runs on the watcher's
    own thread. At most one unit is out at a time; events arriving meanwhile are merged
    into the next one.
    """

    def __init__(
        self,
        library,
        *,
        quiet_s: float = DEFAULT_QUIET_S,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        grace_s: float = DEFAULT_GRACE_S,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        offline_check_s: float = 5.0,
        max_paths: int = 5000,
        run: Callable[[Callable[..., WatchReport]], None] | None = None,
        on_applied: Callable[[WatchReport], None] | None = None,
        on_folder_state: Callable[[str, bool], None] | None = None,
    ):
        self.library = library
        self.quiet_s, self.max_wait_s, self.grace_s = quiet_s, max_wait_s, grace_s
        self.poll_interval_s, self.offline_check_s, self.max_paths = poll_interval_s, offline_check_s, max_paths
        self._run, self.on_applied, self.on_folder_state = run, on_applied, on_folder_state
        self._exts = photo_extensions()
        self._cond = threading.Condition()
        self._pending = Batch()
        self._inflight = 0
        self._observers: dict[str, tuple[object, str]] = {}  # root -> (observer, "native"|"polling")
        self._wanted: dict[str, bool] = {}  # root -> poll, for every folder we should be watching
        self._offline: set[str] = set()
        self._gc_due: float | None = None
        self._next_offline_check = 0.0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._overflow = _OverflowLog(self)
        self.totals = WatchReport()  # sums over all batches, for status and tests

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Watcher:
        if self._thread is None:
            logging.getLogger("watchdog.observers.inotify_c").addHandler(self._overflow)
            self._thread = threading.Thread(target=self._loop, name="watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()
            roots = list(self._observers)
        for root in roots:
            self._stop_observer(root)
        logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._overflow)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def watch_all(self) -> None:
        """Watch every folder of the library (as the database lists them)."""
        for f in self.library.db.folders():
            self.watch(f["path"], poll=bool(f["poll"]))

    def watch(self, root: str, *, poll: bool = False) -> str:
        """Start watching a library folder. Returns "native", "polling" or "offline"."""
        with self._cond:
            self._wanted[root] = poll
            if root in self._observers:
                return self._observers[root][1]
        if not folder_reachable(root):
            with self._cond:
                self._offline.add(root)
            return "offline"
        obs, how = self._start_observer(root, poll)
        with self._cond:
            if root not in self._wanted or self._stopped.is_set():  # unwatched meanwhile
                self._stop_quietly(obs)
                return how
            self._observers[root] = (obs, how)
            self._offline.discard(root)
        return how

    def unwatch(self, root: str) -> None:
        with self._cond:
            self._wanted.pop(root, None)
            self._offline.discard(root)
            self._pending.dirty.pop(root, None)
            self._pending.moves.pop(root, None)
            self._pending.rescan.discard(root)
        self._stop_observer(root)

    def watched(self) -> dict[str, str]:
        """root -> "native" | "polling" | "offline" for every folder being watched."""
        with self._cond:
            out = {r: "offline" for r in self._offline if r in self._wanted}
            out.update({r: how for r, (_, how) in self._observers.items()})
            return out

    def idle(self) -> bool:
        with self._cond:
            return self._pending.empty() and self._inflight == 0

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no events are pending and no work is in flight (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._pending.empty() and self._inflight == 0):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def request_rescan(self, root: str) -> None:
        with self._cond:
            self._add(root, lambda b: b.rescan.add(root))

    # -- observers -------------------------------------------------------------------------

    def _start_observer(self, root: str, poll: bool):
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        handler = _Handler(self, root)
        if not poll:
            obs = Observer()
            try:
                obs.schedule(handler, root, recursive=True)
                obs.start()
                return obs, "native"
            except OSError as e:  # inotify watch/instance limits, unsupported file systems
                log.warning("cannot watch %s with OS events (%s); polling it instead", root, e)
                self._stop_quietly(obs)
        obs = PollingObserver(timeout=self.poll_interval_s)
        obs.schedule(handler, root, recursive=True)
        obs.start()
        return obs, "polling"

    def _stop_observer(self, root: str) -> None:
        with self._cond:
            entry = self._observers.pop(root, None)
        if entry is not None:
            self._stop_quietly(entry[0])

    @staticmethod
    def _stop_quietly(obs) -> None:
        try:
            obs.stop()
            if obs.is_alive():
                obs.join(5.0)
        except Exception:
            log.debug("observer did not stop cleanly", exc_info=True)

    def _rescan_native(self) -> None:
        with self._cond:
            for root, (_, how) in self._observers.items():
                if how == "native":
                    self._add(root, lambda b, r=root: b.rescan.add(r))

    # -- events ----------------------------------------------------------------------------

    def _wanted_path(self, root: str, path: str, *, is_dir: bool = False) -> bool:
        """Under root, not hidden below it and (for files) a photo extension."""
        if path == root:
            return True
        if not storable(path):
            return False  # not UTF-8: the scan skips it too (see scan.walk_photos)
        prefix = root.rstrip(os.sep) + os.sep
        if not path.startswith(prefix):
            return False
        rel = path[len(prefix) :]
        if any(part.startswith(".") for part in rel.split(os.sep)):
            return False
        if is_dir:
            return True
        dot = rel.rfind(".")
        return dot >= 0 and rel[dot + 1 :].lower() in self._exts

    def _add(self, root: str, change: Callable[[Batch], None]) -> None:
        """Record a change (caller holds the lock) and wake the debounce loop."""
        now = time.monotonic()
        if self._pending.empty():
            self._pending.first_at = now
        self._pending.last_at = now
        change(self._pending)
        if root in self._pending.rescan:  # a rescan covers every path below the root
            self._pending.dirty.pop(root, None)
            self._pending.moves.pop(root, None)
        elif self._pending.size(root) > self.max_paths:
            self._pending.rescan.add(root)
            self._pending.dirty.pop(root, None)
            self._pending.moves.pop(root, None)
        self._cond.notify_all()

    def _on_event(self, root: str, event) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if kind == "moved" else ""
        with self._cond:
            if root not in self._wanted or root in self._pending.rescan:
                return
            if event.is_directory:
                if kind in ("modified", "attrib", "closed"):
                    return  # the files inside report their own changes
                if self._wanted_path(root, src, is_dir=True) or (dest and self._wanted_path(root, dest, is_dir=True)):
                    # Directory created, deleted or moved (or the root itself): the events for
                    # what is inside may be missing or arrive before the watch does. Rescan.
                    self._add(root, lambda b: b.rescan.add(root))
                return
            if kind == "moved":
                s_ok, d_ok = self._wanted_path(root, src), self._wanted_path(root, dest)
                if s_ok and d_ok:
                    self._add(root, lambda b: b.moves.setdefault(root, []).append((src, dest)))
                elif s_ok or d_ok:
                    self._add(root, lambda b: b.dirty.setdefault(root, set()).add(src if s_ok else dest))
                return
            if self._wanted_path(root, src):
                self._add(root, lambda b: b.dirty.setdefault(root, set()).add(src))

    # -- the debounce loop -----------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopped.is_set():
            batch = None
            with self._cond:
                now = time.monotonic()
                wait = 1.0
                if self._gc_due is not None and now >= self._gc_due:
                    self._gc_due = None
                    self._add("", lambda b: setattr(b, "gc", True))
                if not self._pending.empty():
                    due = min(self._pending.last_at + self.quiet_s, self._pending.first_at + self.max_wait_s)
                    if now >= due and self._inflight == 0:
                        batch, self._pending = self._pending, Batch()
                        self._inflight += 1
                    else:
                        wait = max(0.01, due - now) if self._inflight == 0 else 0.1
                if batch is None:
                    self._cond.wait(wait)
            if batch is not None:
                self._hand_out(batch)
            if time.monotonic() >= self._next_offline_check:
                self._next_offline_check = time.monotonic() + self.offline_check_s
                self._check_offline()

    def _hand_out(self, batch: Batch) -> None:
        unit = Unit(self, batch)
        if self._run is None:
            try:
                unit()
            except Exception:
                log.exception("watcher: applying changes failed; the next scan will catch up")
            return
        try:
            self._run(unit)
        except Exception:
            log.exception("watcher: could not hand out changes")
            unit.drop()

    def _unit_over(self, batch: Batch | None) -> None:
        with self._cond:
            self._inflight -= 1
            if batch is not None:  # dropped: its paths are looked at again
                self._requeue_locked(batch)
            self._cond.notify_all()

    def _check_offline(self) -> None:
        with self._cond:
            back = [r for r in self._offline if r in self._wanted]
        for root in back:
            if not folder_reachable(root):
                continue
            log.info("folder %s is reachable again", root)
            poll = self._wanted.get(root, False)
            self.watch(root, poll=poll)
            self.request_rescan(root)
            if self.on_folder_state is not None:
                self.on_folder_state(root, True)

    def _went_offline(self, root: str, report: WatchReport) -> None:
        log.info("folder %s cannot be reached; it stays in the library, offline", root)
        report.offline.append(root)
        self._stop_observer(root)
        with self._cond:
            if root in self._wanted:
                self._offline.add(root)
        if self.on_folder_state is not None:
            self.on_folder_state(root, False)

    # -- applying --------------------------------------------------------------------------

    def apply(self, batch: Batch, *, progress=None, cancel=None, pause=None) -> WatchReport:
        """Make the database match the file system for everything `batch` names."""
        lib = self.library
        db = lib.db
        rep = WatchReport()
        folders = {f["path"]: f for f in db.folders()}
        by_length = sorted(folders, key=len, reverse=True)

        def folder_for(path: str) -> dict | None:
            for root in by_length:
                if path == root:
                    return None
                if path.startswith(root.rstrip(os.sep) + os.sep):
                    return folders[root] if self._wanted_path(root, path) else None
            return None

        touched = set(batch.dirty) | set(batch.moves) | batch.rescan
        for root in sorted(touched):
            f = folders.get(root)
            if f is None:
                continue
            if not folder_reachable(root):
                # Deleted, unmounted or unplugged: keep everything, mark it offline.
                db.set_folder_state(f["id"], online=False)
                batch.rescan.discard(root)
                batch.dirty.pop(root, None)
                batch.moves.pop(root, None)
                self._went_offline(root, rep)
                rep.folders.add(root)

        for root in sorted(batch.rescan):
            if root not in folders:
                continue
            r = lib.scan([root], progress=progress, cancel=cancel, pause=pause, grace_s=self.grace_s)
            rep.rescanned.append(root)
            rep.folders.add(root)
            rep.embedded += r.embedded
            rep.reused += r.reused
            rep.indexed += r.embedded + r.reused
            rep.failed += r.failed
            rep.removed += r.removed
            rep.failures += r.failures
            if r.cancelled:
                return self._requeue(batch, rep)
            if r.offline:
                self._went_offline(root, rep)
            self._gc_soon()

        rows: dict[int, dict[str, FileRow]] = {}
        fails: dict[int, dict[str, tuple]] = {}

        def rows_of(f: dict) -> dict[str, FileRow]:
            if f["id"] not in rows:
                rows[f["id"]] = db.files_in_folder(f["id"])
            return rows[f["id"]]

        def fails_of(f: dict) -> dict[str, tuple]:
            if f["id"] not in fails:
                fails[f["id"]] = db.failures_in_folder(f["id"])
            return fails[f["id"]]

        dirty: set[str] = set()
        for root, paths in batch.dirty.items():
            if root not in batch.rescan:
                dirty |= paths
        for root, pairs in batch.moves.items():
            if root in batch.rescan:
                continue
            for src, dest in pairs:
                dirty.add(src)
                dirty.add(dest)
                sf, df = folder_for(src), folder_for(dest)
                if sf is None or df is None:
                    continue
                row = rows_of(sf).get(src)
                st = _stat_file(dest)
                if row is None or st is None or (row.size, row.mtime_ns) != (st.st_size, st.st_mtime_ns):
                    continue  # not a plain move of what we indexed: reconciling decides
                if db.move_file(src, dest, df["id"], st.st_size, st.st_mtime_ns):
                    rep.moved += 1
                    rep.folders |= {sf["path"], df["path"]}
                    rows_of(sf).pop(src, None)
                    rows_of(df)[dest] = FileRow(dest, row.image_id, st.st_size, st.st_mtime_ns)
                    self._gc_soon()  # a move over another photo orphans it

        tasks: list[FileTask] = []
        gone: list[str] = []
        for path in sorted(dirty):
            f = folder_for(path)
            if f is None:
                continue
            st = _stat_file(path)
            row = rows_of(f).get(path)
            failed = fails_of(f).get(path)
            if st is None:
                if row is not None or failed is not None:
                    gone.append(path)
                    rep.folders.add(f["path"])
                continue
            now = (st.st_size, st.st_mtime_ns)
            if (row is not None and (row.size, row.mtime_ns) == now) or failed == now:
                continue
            tasks.append(FileTask(path, f["id"], *now))
            rep.folders.add(f["path"])

        if tasks:
            r = lib.index_files(tasks, progress=progress, cancel=cancel, pause=pause)
            rep.embedded += r.embedded
            rep.reused += r.reused
            rep.indexed += r.embedded + r.reused
            rep.failed += r.failed
            rep.failures += r.failures
            if r.cancelled:
                return self._requeue(batch, rep)
            # A file that changed while it was read (still being copied) is looked at again.
            again = [t for t in tasks if _stat_key(t.path) != (t.size, t.mtime_ns)]
            if again:
                with self._cond:
                    for t in again:
                        root = next((r for r in by_length if t.path.startswith(r.rstrip(os.sep) + os.sep)), None)
                        if root is not None:
                            self._add(root, lambda b, r=root, p=t.path: b.dirty.setdefault(r, set()).add(p))
        if gone or tasks:
            # Also when nothing is gone: a file re-pointed at new content leaves its old
            # photo without files (commit_batch marks it orphaned), to collect after the grace.
            if db.remove_files(gone) or tasks:
                self._gc_soon()
            rep.removed += len(gone)
        if batch.gc or rep.failed:
            rep.gc = lib.gc(self.grace_s)
            if rep.failed:
                self._gc_soon()
        self._record(rep)
        return rep

    def _requeue(self, batch: Batch, rep: WatchReport) -> WatchReport:
        """Cancelled half-way: what was not applied is looked at again later."""
        rep.cancelled = True
        with self._cond:
            self._requeue_locked(batch)
        self._record(rep)
        return rep

    def _requeue_locked(self, batch: Batch) -> None:
        if self._pending.empty():
            self._pending.first_at = self._pending.last_at = time.monotonic()
        self._pending.merge(batch)
        self._cond.notify_all()

    def _gc_soon(self) -> None:
        with self._cond:
            due = time.monotonic() + self.grace_s + 0.2
            if self._gc_due is None or due < self._gc_due:
                self._gc_due = due

    def _record(self, rep: WatchReport) -> None:
        t = self.totals
        for name in ("indexed", "embedded", "reused", "moved", "removed", "failed", "gc"):
            setattr(t, name, getattr(t, name) + getattr(rep, name))
        t.rescanned += rep.rescanned
        t.offline += rep.offline
        if self.on_applied is not None and (rep.changed or rep.offline):
            try:
                self.on_applied(rep)
            except Exception:
                log.exception("watcher: on_applied callback failed")


def _stat_file(path: str) -> os.stat_result | None:
    """stat of a regular file (following symlinks, as the scanner does), else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _stat_key(path: str) -> tuple[int, int] | None:
    st = _stat_file(path)
    return None if st is None else (st.st_size, st.st_mtime_ns)
