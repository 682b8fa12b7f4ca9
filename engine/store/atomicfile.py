"""Replace a file's content atomically: readers see the old file or the whole new one, never half.

The new bytes go to a temporary file in the same folder (so the final rename never crosses a
file system), are flushed to disk, and then ``os.replace`` swaps it in. Any failure on the way
removes the temporary file and leaves the original untouched.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class FileChanged(OSError):
    """The target was changed by someone else between reading it and replacing it."""


def replace_bytes(path: Path, data: bytes, *, expect: os.stat_result | None = None) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``).

    ``expect``: the ``os.stat`` of ``path`` when its old content was read. If the file no longer
    matches (size or modification time), someone else wrote it meanwhile and :class:`FileChanged`
    is raised instead of overwriting their change. The file's permission bits are kept; a
    symbolic link keeps pointing at the (updated) file. A hard link is not kept: the new
    content is a new file, as with any editor that saves safely.
    Raises ``OSError`` (``PermissionError`` for a read-only folder) with nothing changed.
    """
    # Replace what a symbolic link points at, not the link (which would become a plain file).
    path = Path(os.path.realpath(path))
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _keep_mode(path, tmp)
        if expect is not None:
            _check_unchanged(path, expect)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def temp_name_for(path: Path) -> str:
    """The name pattern of the temporary files (hidden, beside the target): ``.NAME.XXXX.tmp``."""
    return f".{path.name}.{secrets.token_hex(4)}.tmp"


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file beside ``path``. Created with mode 0666 so the umask applies, as for
    any file the user makes (``tempfile.mkstemp`` would give 0600, unreadable to others)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / temp_name_for(path)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name beside {path}")


def _keep_mode(path: Path, tmp: Path) -> None:
    """Give the new file the permission bits of the one it replaces (a new file keeps umask's)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def _check_unchanged(path: Path, expect: os.stat_result) -> None:
    try:
        now = path.stat()
    except FileNotFoundError:
        raise FileChanged(f"{path} was removed while it was being updated") from None
    if (now.st_size, now.st_mtime_ns) != (expect.st_size, expect.st_mtime_ns):
        raise FileChanged(f"{path} was changed by another program while it was being updated")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); Windows has no folder handles to sync."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse to fsync a folder; the data itself is already synced
    finally:
        os.close(fd)
