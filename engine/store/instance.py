"""One writer per library: a lock on the data folder, held by the engine or a CLI command.

Two processes writing one library would each keep their own ANN cache and model state
and save over each other's, so a second engine (or ``photosift index`` while the app
runs) is refused with a clear message instead. The lock is an OS file lock
(``filelock``: ``flock`` on Unix, ``msvcrt.locking`` on Windows), which the operating
system drops when its process dies: a crashed or killed engine never leaves a stale
lock behind, and the app can restart it at once. The lock file itself stays; a small
JSON file beside it says who holds the lock, for the message.

The data folder must also be writable: SQLite needs to create its journal files there.
A read-only folder is refused here, before anything opens the database.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from pathlib import Path

from ..errors import DatabaseError

LOCK_NAME = "engine.lock"
OWNER_NAME = "engine.lock.json"
# An engine the app has just told to stop may still be saving its caches: wait this long.
DEFAULT_WAIT_S = 2.0


class LibraryInUse(DatabaseError):
    """Another photosift process holds this library's data folder."""


class DataDirNotWritable(DatabaseError):
    """The data folder cannot be written (read-only disk, permissions)."""


def _not_writable(data_dir: Path, e: OSError) -> DataDirNotWritable:
    why = e.strerror or str(e)
    return DataDirNotWritable(
        f"the data folder {data_dir} cannot be written ({why}); photosift keeps its library "
        f"there. Make it writable, or choose another folder with --data-dir or $PHOTOSIFT_HOME. "
        f"Nothing in it was changed."
    )


def check_writable(data_dir: Path) -> None:
    """Create the data folder if needed and prove a file can be made in it."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir, prefix=".probe-"):
            pass
    except OSError as e:
        raise _not_writable(data_dir, e) from e


class InstanceLock:
    """The data folder's single-writer lock. ``acquire()`` raises LibraryInUse or DataDirNotWritable."""

    def __init__(self, data_dir: Path, role: str = "engine", *, wait_s: float = DEFAULT_WAIT_S):
        self.data_dir = Path(data_dir)
        self.role = role
        self.wait_s = wait_s
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def acquire(self) -> InstanceLock:
        from filelock import FileLock, Timeout

        check_writable(self.data_dir)
        lock = FileLock(
            os.fspath(self.data_dir / LOCK_NAME), timeout=self.wait_s, thread_local=False
        )
        try:
            lock.acquire()
        except Timeout:
            raise LibraryInUse(
                f"the library in {self.data_dir} is in use by {self._holder()}; close that first "
                f"(only one photosift may write a library at a time), or choose another data folder"
            ) from None
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise _not_writable(self.data_dir, e) from e
            raise DatabaseError(f"cannot lock the data folder {self.data_dir}: {e}") from e
        self._lock = lock
        owner = dict(pid=os.getpid(), role=self.role, since=time.time())
        with contextlib.suppress(OSError):  # only used to word the message for the next one
            tmp = self.data_dir / f".{OWNER_NAME}.{os.getpid()}"
            tmp.write_text(json.dumps(owner), encoding="utf-8")
            os.replace(tmp, self.data_dir / OWNER_NAME)
        return self

    def _holder(self) -> str:
        try:
            owner = json.loads((self.data_dir / OWNER_NAME).read_text(encoding="utf-8"))
            return f"another photosift {owner.get('role', 'process')} (process {int(owner['pid'])})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another photosift process"

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            with contextlib.suppress(OSError):
                (self.data_dir / OWNER_NAME).unlink(missing_ok=True)
            lock.release()

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
