"""The preview pane: the selected photo (EXIF-rotated) and what is known about it.

The image is decoded with QImageReader (autoTransform applies the EXIF orientation) on
a worker thread, at most at the size it is shown, so a 50-megapixel photo never stalls
the window. Camera RAW files, which Qt cannot decode (it would show the small TIFF thumbnail
at the front of a DNG or NEF), and any file QImageReader fails on are rendered by the engine
(its ``thumbnail`` call at the pane's size, cached on disk) and that JPEG is shown instead.
The stored metadata comes with the search hit and shows at once;
``photo_info`` (tags, keywords, GPS) fills in the rest when the engine answers.
"""

from __future__ import annotations

import datetime as dt
import os

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.service.protocol import RAW_EXTENSIONS

PREVIEW_MAX = 1400  # device pixels on the long side; enough for the pane on a 4K screen


def is_raw(path: str) -> bool:
    return os.path.splitext(path)[1][1:].lower() in RAW_EXTENSIONS


class _Loaded(QObject):
    done = Signal(int, QImage)


class _LoadJob(QRunnable):
    def __init__(self, ticket: int, path: str, sink: _Loaded):
        super().__init__()
        self.ticket, self.path, self.sink = ticket, path, sink

    def run(self) -> None:
        reader = QImageReader(self.path)
        reader.setAutoTransform(True)  # EXIF orientation
        reader.setAllocationLimit(1024)  # MB; a decompression bomb fails instead of eating memory
        s = reader.size()
        if s.isValid() and max(s.width(), s.height()) > PREVIEW_MAX:
            reader.setScaledSize(
                s.scaled(QSize(PREVIEW_MAX, PREVIEW_MAX), Qt.AspectRatioMode.KeepAspectRatio)
            )
        self.sink.done.emit(self.ticket, reader.read())


def human_size(n: int | None) -> str:
    if n is None:
        return "—"
    f = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if f < 1024 or unit == "GB":
            return f"{int(f)} {unit}" if unit == "bytes" else f"{f:.1f} {unit}"
        f /= 1024
    return f"{n} bytes"


def human_date(iso: str | None) -> str:
    if not iso:
        return "unknown"
    try:
        d = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return d.strftime("%-d %b %Y, %H:%M") if os.name != "nt" else d.strftime("%d %b %Y, %H:%M")


class PreviewPane(QWidget):
    """Shows one hit; emits what the user asks for with its buttons."""

    openRequested = Signal(str)
    revealRequested = Signal(str)
    similarRequested = Signal(str)

    def __init__(self, bridge, parent=None, catalog=None):
        super().__init__(parent)
        self.bridge = bridge
        self.path: str | None = None
        self._ticket = 0
        self._image: QImage | None = None
        self._engine_ticket = 0  # the last photo the engine was asked to render
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._loaded = _Loaded(self)
        self._loaded.done.connect(self._on_loaded)
        self.setMinimumWidth(240)

        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setObjectName("previewImage")
        self.image.setMinimumSize(200, 160)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.title = QLabel(objectName="previewTitle", wordWrap=True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form = form
        self.fields: dict[str, QLabel] = {}
        for key, label in (("taken", "Taken"), ("size", "Size"), ("dims", "Dimensions"),
                           ("camera", "Camera"), ("folder", "Folder"), ("twins", "Also as"),
                           ("tags", "Keywords"), ("score", "Score")):  # fmt: skip
            v = QLabel(wordWrap=True)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            v.setObjectName(f"field_{key}")
            self.fields[key] = v
            form.addRow(label, v)
        self.open_btn = QPushButton("Open")
        self.open_btn.setToolTip("Open the photo in its default application (Enter)")
        self.reveal_btn = QPushButton("Show in folder")
        self.similar_btn = QPushButton("More like this")
        self.similar_btn.setToolTip("Search for photos like this one")
        self.open_btn.clicked.connect(lambda: self.path and self.openRequested.emit(self.path))
        self.reveal_btn.clicked.connect(lambda: self.path and self.revealRequested.emit(self.path))
        self.similar_btn.clicked.connect(
            lambda: self.path and self.similarRequested.emit(self.path)
        )
        buttons = QHBoxLayout()
        for b in (self.open_btn, self.reveal_btn, self.similar_btn):
            buttons.addWidget(b)
        # The photo's tags with confirm / reject (app.photo_tags), when the window has a tag catalog.
        self.tags_view = None
        if catalog is not None:
            from .photo_tags import PhotoTagsView

            self.tags_view = PhotoTagsView(bridge, catalog)
        self.empty = QLabel("Select a photo to see it here.", alignment=Qt.AlignmentFlag.AlignCenter,
                            objectName="emptyHint", wordWrap=True)  # fmt: skip

        self.details = QWidget()
        d = QVBoxLayout(self.details)
        d.setContentsMargins(0, 0, 0, 0)
        d.addWidget(self.image, 10)  # most of the spare height: up to its maximum, the photo's size
        d.addWidget(self.title)
        d.addLayout(form)
        if self.tags_view is not None:
            d.addWidget(QLabel("Tags", objectName="previewTitle"))
            d.addWidget(self.tags_view)
        d.addLayout(buttons)
        d.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 10, 10, 10)
        lay.addWidget(self.empty, 1)
        lay.addWidget(self.details, 1)
        self.show_hit(None)

    def show_hit(self, hit: dict | None) -> None:
        """Show a search hit (or nothing). Metadata at once; the image and tags follow."""
        self._ticket += 1
        self._image = None
        self.image.clear()
        self.image.setMaximumHeight(16777215)
        if hit is None:
            self.path = None
            if self.tags_view is not None:
                self.tags_view.show_tags(None, [])
            self.details.hide()
            self.empty.show()
            return
        self.empty.hide()
        self.details.show()
        self.path = hit["path"]
        m = hit.get("metadata") or {}
        self.title.setText(os.path.basename(self.path))
        self.title.setToolTip(self.path)
        self.fields["taken"].setText(human_date(m.get("taken_at")))
        self.fields["size"].setText(human_size(m.get("size")))
        w, h = m.get("width"), m.get("height")
        self.fields["dims"].setText(
            f"{w} × {h} {m.get('format') or ''}".strip() if w and h else "—"
        )
        cam = " ".join(x for x in (m.get("camera_make"), m.get("camera_model")) if x)
        self.fields["camera"].setText(cam or "—")
        self.fields["folder"].setText(os.path.dirname(self.path))
        self._show_twins(m.get("twins") or [])
        self.fields["tags"].setText("…")
        if self.tags_view is not None:
            self.tags_view.show_tags(self.path, [], loading=True)
        self.fields["score"].setText(f"{hit['score']:.3f}" if "score" in hit else "—")
        online = hit.get("online", True)
        self.open_btn.setEnabled(online)
        self.reveal_btn.setEnabled(online)
        if online and is_raw(self.path):
            self._from_engine(self._ticket, self.path)
        elif online:
            self._pool.start(_LoadJob(self._ticket, self.path, self._loaded))
        else:
            self.image.setText("This photo's folder is offline.")
        ticket = self._ticket
        self.bridge.call("photo_info", {"path": self.path},
                         on_result=lambda info: self._on_info(ticket, info),
                         on_error=lambda e: self._on_info(ticket, None), context=self)  # fmt: skip

    def _show_twins(self, twins: list[str]) -> None:
        """The other half of a RAW + JPEG pair: the engine shows the pair once, as its JPEG."""
        row = self.fields["twins"]
        row.setText(", ".join(os.path.basename(t) for t in twins))
        row.setToolTip("\n".join(twins))
        self.form.setRowVisible(row, bool(twins))

    def _from_engine(self, ticket: int, path: str) -> None:
        """Ask the engine to render the photo (a RAW file, or one Qt cannot read) and show that."""

        self._engine_ticket = ticket

        def rendered(result: dict) -> None:
            if ticket == self._ticket:
                self._pool.start(_LoadJob(ticket, result["path"], self._loaded))

        self.bridge.call("thumbnail", {"path": path, "size": PREVIEW_MAX}, on_result=rendered,
                         on_error=lambda e: self._on_loaded(ticket, QImage()), context=self)  # fmt: skip

    def _on_info(self, ticket: int, info: dict | None) -> None:
        if ticket != self._ticket:
            return  # the user moved on
        if info is None:
            self.fields["tags"].setText("—")
            return
        words = list(info.get("keywords") or [])
        self.fields["tags"].setText(", ".join(words) if words else "none")
        if self.tags_view is not None:
            self.tags_view.show_tags(self.path, info.get("tags") or [])
            self._rescale()  # the tag list took its height: the photo takes the rest
        if info.get("taken_at"):
            self.fields["taken"].setText(human_date(info["taken_at"]))
        # A hit from the tag browser comes without metadata: photo_info has it.
        if info.get("size") is not None and self.fields["size"].text() == "—":
            self.fields["size"].setText(human_size(info.get("size")))
            w, h = info.get("width"), info.get("height")
            if w and h:
                self.fields["dims"].setText(f"{w} × {h} {info.get('format') or ''}".strip())
            cam = " ".join(x for x in (info.get("camera_make"), info.get("camera_model")) if x)
            self.fields["camera"].setText(cam or "—")

    def _on_loaded(self, ticket: int, image: QImage) -> None:
        if ticket != self._ticket:
            return
        if image.isNull() and self._engine_ticket != ticket and self.path:
            self._from_engine(ticket, self.path)  # a format Qt has no plugin for: the engine has
            return
        if image.isNull():
            self.image.setText("Cannot show this photo.")
            return
        self._image = image
        self._rescale()

    def _rescale(self) -> None:
        if self._image is None:
            return
        dpr = self.devicePixelRatioF()
        # The photo takes the pane's width and as much height as the details leave; the label
        # shrinks to the photo, so the details sit right under it rather than at the bottom.
        below = (
            self.title.sizeHint().height()
            + self._form_height()
            + self.open_btn.sizeHint().height()
            + 48
        )
        if self.tags_view is not None:
            # With the tag list the details are taller: ask their layout what they need
            # besides the photo, rather than summing guesses.
            lay = self.details.layout()
            below = (
                lay.sizeHint().height() - self.image.sizeHint().height() + 2 * lay.spacing() + 24
            )
        avail = QSize(self.image.width(), max(160, self.height() - below))
        pm = QPixmap.fromImage(self._image).scaled(avail * dpr, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.SmoothTransformation)  # fmt: skip
        pm.setDevicePixelRatio(dpr)
        self.image.setMaximumHeight(max(self.image.minimumHeight(), int(pm.height() / dpr)))
        self.image.setPixmap(pm)

    def _form_height(self) -> int:
        h = sum(v.sizeHint().height() + 6 for v in self.fields.values())
        if self.tags_view is not None:
            h += self.tags_view.sizeHint().height() + 30
        return h

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        self._rescale()

    def has_image(self) -> bool:
        return self._image is not None
