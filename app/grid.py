"""The results grid: a QListView over a flat list model, virtualised.

Uniform item sizes let the view lay out thousands of results without asking the model
about each, and it only paints (and so only asks thumbnails for) the items on screen.
The delegate draws a placeholder until the thumbnail cache says a pixmap is ready.
"""

from __future__ import annotations

import os
from collections import defaultdict

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPainterPath, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from .thumbs import ThumbnailCache

HitRole = Qt.ItemDataRole.UserRole + 1
PathRole = Qt.ItemDataRole.UserRole + 2
CAPTION_H = 20
PAD = 6


class ResultsModel(QAbstractListModel):
    """Search hits (protocol SearchHit dicts), one per image, best first."""

    def __init__(self, thumbs: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.thumbs = thumbs
        self.hits: list[dict] = []
        self._rows: dict[str, list[int]] = defaultdict(list)
        thumbs.ready.connect(self._thumb_ready)

    def set_hits(self, hits: list[dict]) -> None:
        # The engine can answer one image more than once (several paths to the same
        # content); the grid shows each image once.
        seen, unique = set(), []
        for h in hits:
            if h["image_id"] not in seen:
                seen.add(h["image_id"])
                unique.append(h)
        self.beginResetModel()
        self.hits = unique
        self._rows = defaultdict(list)
        for n, h in enumerate(unique):
            self._rows[h["path"]].append(n)
        self.endResetModel()

    def hit(self, row: int) -> dict | None:
        return self.hits[row] if 0 <= row < len(self.hits) else None

    def row_of(self, path: str) -> int | None:
        rows = self._rows.get(path)
        return rows[0] if rows else None

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.hits)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.hits):
            return None
        h = self.hits[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(h["path"])
        if role == Qt.ItemDataRole.ToolTipRole:
            off = "" if h.get("online", True) else "\n(offline)"
            twins = (h.get("metadata") or {}).get("twins") or []  # a RAW + JPEG pair's other half
            also = "".join(f"\nalso {os.path.basename(t)}" for t in twins)
            return f"score {h['score']:.3f}\n{h['path']}{also}{off}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{os.path.basename(h['path'])}, score {h['score']:.2f}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbs.get(h["path"])  # None until loaded; starts the load
        if role == HitRole:
            return h
        if role == PathRole:
            return h["path"]
        return None

    def flags(self, index):
        f = super().flags(index)
        return f | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else f

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes) -> QMimeData:
        md = QMimeData()
        md.setUrls([QUrl.fromLocalFile(self.hits[i.row()]["path"]) for i in indexes if i.isValid()])
        return md

    def _thumb_ready(self, path: str) -> None:
        for row in self._rows.get(path, ()):
            ix = self.index(row)
            self.dataChanged.emit(ix, ix, [Qt.ItemDataRole.DecorationRole])


class ThumbDelegate(QStyledItemDelegate):
    """A square tile: the thumbnail centred (never upscaled), the file name under it."""

    def __init__(self, thumb: int, parent=None):
        super().__init__(parent)
        self.thumb = thumb

    def sizeHint(self, option, index) -> QSize:
        return QSize(self.thumb + 2 * PAD, self.thumb + CAPTION_H + 2 * PAD)

    def paint(self, p: QPainter, option: QStyleOptionViewItem, index) -> None:
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal: QPalette = option.palette
        r: QRect = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hover = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hover:
            bg = QColor(pal.color(QPalette.ColorRole.Highlight))
            bg.setAlpha(255 if selected else 60)
            path = QPainterPath()
            path.addRoundedRect(r, 8, 8)
            p.fillPath(path, bg)
        box = QRect(r.x() + PAD - 2, r.y() + PAD - 2, self.thumb, self.thumb)
        pm = index.data(Qt.ItemDataRole.DecorationRole)
        if pm is not None and not pm.isNull():
            w = pm.width() / pm.devicePixelRatio()
            h = pm.height() / pm.devicePixelRatio()
            scale = min(1.0, box.width() / w, box.height() / h)
            tw, th = int(w * scale), int(h * scale)
            target = QRect(
                box.x() + (box.width() - tw) // 2, box.y() + (box.height() - th) // 2, tw, th
            )
            p.drawPixmap(target, pm)
        else:
            ph = QColor(pal.color(QPalette.ColorRole.Mid))
            ph.setAlpha(70)
            path = QPainterPath()
            path.addRoundedRect(box.adjusted(8, 8, -8, -8), 6, 6)
            p.fillPath(path, ph)
        text_rect = QRect(r.x() + 4, box.bottom() + 4, r.width() - 8, CAPTION_H - 4)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        p.setPen(pal.color(role))
        name = p.fontMetrics().elidedText(
            index.data(), Qt.TextElideMode.ElideMiddle, text_rect.width()
        )
        p.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name)
        p.restore()


class ResultsView(QListView):
    """Icon-mode list: arrows move, Enter opens, typing goes to the search box."""

    openRequested = Signal(str)  # path
    typed = Signal(str)  # printable text typed while the grid has focus
    escapePressed = Signal()

    def __init__(self, model: ResultsModel, thumb: int = 160, parent=None):
        super().__init__(parent)
        self.setModel(model)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)  # layout without asking every item: thousands stay fast
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)  # hover highlight
        self.setSpacing(4)
        self.setWordWrap(False)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.setAccessibleName("Search results")
        self.delegate = ThumbDelegate(thumb, self)
        self.setItemDelegate(self.delegate)
        self.verticalScrollBar().setSingleStep(24)
        self.doubleClicked.connect(self._open_index)

    def set_thumb_size(self, thumb: int) -> None:
        self.delegate.thumb = thumb
        self._fit_grid()

    def _fit_grid(self) -> None:
        """Spread the columns over the whole width: no ragged empty strip on the right."""
        tile = self.delegate.sizeHint(None, None)
        width = self.viewport().width() - 2 * self.spacing()
        cols = max(1, width // (tile.width() + 2 * self.spacing()))
        cell = max(tile.width(), width // cols - 2 * self.spacing())
        grid = QSize(cell, tile.height())
        if grid != self.gridSize():
            self.setGridSize(grid)

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        self._fit_grid()

    def current_path(self) -> str | None:
        ix = self.currentIndex()
        return ix.data(PathRole) if ix.isValid() else None

    def _open_index(self, ix: QModelIndex | QPersistentModelIndex) -> None:
        if ix.isValid():
            self.openRequested.emit(ix.data(PathRole))

    def keyPressEvent(self, e: QKeyEvent) -> None:
        key = e.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._open_index(self.currentIndex())
            return
        if key == Qt.Key.Key_Escape:
            self.escapePressed.emit()
            return
        text = e.text()
        mods = e.modifiers() & ~(
            Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier
        )
        if (
            text
            and text.isprintable()
            and not text.isspace()
            and mods == Qt.KeyboardModifier.NoModifier
        ):
            self.typed.emit(text)  # type-to-search: the window moves focus to the search box
            return
        super().keyPressEvent(e)
