"""Thumbnails for the results grid: asked of the engine lazily, cached on disk and in memory.

The engine's ``thumbnail`` call makes (once per file version and size) a JPEG under
``<data_dir>/thumbs`` and answers with its path; that is the disk cache, shared across
runs. Here we keep decoded pixmaps in a bounded in-memory LRU, and we decode those JPEGs
on a thread pool (QImageReader) so the GUI thread only ever converts a finished QImage.

Requests are served newest first: while the user scrolls, the items now on screen are
the ones asked for last, so they load before the ones that already scrolled away.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap

MAX_IN_FLIGHT = 6  # engine calls at once: leaves the engine's pool room for searches
MAX_QUEUED = 400  # older requests than this are forgotten (scrolled far away)
MEMORY_ITEMS = 1500  # decoded pixmaps kept; ~60 KB each at 160 px


class _Decoded(QObject):
    done = Signal(str, QImage)


class _DecodeJob(QRunnable):
    def __init__(self, key: str, file: str, size: int, sink: _Decoded):
        super().__init__()
        self.key, self.file, self.size, self.sink = key, file, size, sink

    def run(self) -> None:
        reader = QImageReader(self.file)
        reader.setAutoTransform(True)
        s = reader.size()
        if s.isValid() and max(s.width(), s.height()) > self.size:
            reader.setScaledSize(
                s.scaled(QSize(self.size, self.size), Qt.AspectRatioMode.KeepAspectRatio)
            )
        self.sink.done.emit(self.key, reader.read())  # a null QImage says "failed"


class ThumbnailCache(QObject):
    """``get(path)`` returns a QPixmap or None (and starts loading it); ``ready(path)`` follows."""

    ready = Signal(str)

    def __init__(self, bridge, size: int = 256, parent: QObject | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.size = size
        self.dpr = 1.0
        self._mem: OrderedDict[str, QPixmap] = OrderedDict()
        self._failed: set[str] = set()
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._decoded = _Decoded(self)
        self._decoded.done.connect(self._on_decoded)
        self.requests = 0  # engine calls made (tests check that only visible items ask)

    def set_size(self, size: int, dpr: float = 1.0) -> None:
        """Pixel size per side (device pixels = size * dpr); a change drops the memory cache."""
        size = max(16, min(1024, int(size * dpr)))
        if size != self.size:
            self.size, self.dpr = size, dpr
            self.clear()
        self.dpr = dpr

    def clear(self) -> None:
        self._mem.clear()
        self._failed.clear()
        self._queue.clear()

    def get(self, path: str) -> QPixmap | None:
        pm = self._mem.get(path)
        if pm is not None:
            self._mem.move_to_end(path)
            return pm
        if path in self._failed or path in self._in_flight:
            return None
        self._queue[path] = None
        self._queue.move_to_end(path)  # newest first
        while len(self._queue) > MAX_QUEUED:
            self._queue.popitem(last=False)
        self._pump()
        return None

    def failed(self, path: str) -> bool:
        return path in self._failed

    def clear_failures(self) -> None:
        """The library changed: a file that could not be read may be readable now."""
        self._failed.clear()

    def forget(self, path: str) -> None:
        """Drop a cached thumbnail (the file changed or went away)."""
        self._mem.pop(path, None)
        self._failed.discard(path)

    def _pump(self) -> None:
        if not self.bridge.is_ready:
            return
        while self._queue and len(self._in_flight) < MAX_IN_FLIGHT:
            path, _ = self._queue.popitem(last=True)
            self._in_flight.add(path)
            self.requests += 1
            self.bridge.call(
                "thumbnail", {"path": path, "size": self.size},
                on_result=lambda r, p=path: self._on_file(p, r),
                on_error=lambda e, p=path: self._on_error(p, e),
                context=self,
            )  # fmt: skip

    def resume(self) -> None:
        """The engine is (back) up: serve what queued meanwhile, retry what died with it."""
        self._in_flight.clear()
        self._pump()

    def _on_file(self, path: str, result: dict) -> None:
        self._pool.start(_DecodeJob(path, result["path"], self.size, self._decoded))

    def _on_error(self, path: str, err) -> None:
        self._in_flight.discard(path)
        if err.code != "engine_died":  # a dead engine is retried after the restart
            self._failed.add(path)
            self.ready.emit(path)  # so the view can draw a "could not load" tile
        self._pump()

    def _on_decoded(self, path: str, image: QImage) -> None:
        self._in_flight.discard(path)
        if image.isNull():
            self._failed.add(path)
        else:
            pm = QPixmap.fromImage(image)
            pm.setDevicePixelRatio(self.dpr)  # crisp on high-DPI screens
            self._mem[path] = pm
            while len(self._mem) > MEMORY_ITEMS:
                self._mem.popitem(last=False)
        self.ready.emit(path)
        self._pump()
