"""The fine-tuning dialog's two charts, painted with QPainter (no plotting dependency).

:class:`LossCurve` shows training live: the loss as a line and the validation mean
average precision as dots on a 0-100 % axis of its own. :class:`BeforeAfterChart`
shows, per label, a value before and after training as two bars side by side.
Both keep their data in plain lists, so tests can read what is drawn.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .theme import ACCENT

BEFORE = QColor(150, 156, 166)  # neutral: what the model did before
AFTER = ACCENT  # the app's accent: what it does now
VAL = QColor(232, 146, 40)  # validation points: a second, warm colour


def _ok(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _text_colour(w: QWidget) -> QColor:
    return w.palette().color(QPalette.ColorRole.WindowText)


def _grid_colour(w: QWidget) -> QColor:
    c = QColor(_text_colour(w))
    c.setAlpha(40)
    return c


def nice_ceiling(v: float) -> float:
    """A round axis top at or above `v` (v > 0) whose quarters are round too (1.2: 0.3)."""
    k = 10 ** math.floor(math.log10(v))
    return next(m * k for m in (1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10) if m * k >= v * (1 - 1e-9))


class LossCurve(QWidget):
    """Training loss per step (line, left axis) and validation mAP (dots, right axis)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.loss: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.total_steps = 0
        self.best_step: int | None = None  # the step whose weights were kept, once known
        self.setMinimumSize(320, 170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Training loss curve")

    def clear(self, total_steps: int = 0) -> None:
        self.loss, self.val, self.total_steps, self.best_step = [], [], total_steps, None
        self.update()

    def add(self, rec: dict) -> None:
        """Take one training record ({step, loss?, val_map?}); a step seen before is ignored."""
        step = int(rec.get("step", 0))
        if _ok(rec.get("loss")) and (not self.loss or step > self.loss[-1][0]):
            self.loss.append((step, float(rec["loss"])))
        if _ok(rec.get("val_map")) and (not self.val or step > self.val[-1][0]):
            self.val.append((step, float(rec["val_map"])))
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(560, 220)

    def paintEvent(self, _e) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = QFontMetrics(self.font())
        fg, grid = _text_colour(self), _grid_colour(self)
        left, right = fm.horizontalAdvance("0.000") + 12, fm.horizontalAdvance("100 %") + 12
        top, bottom = fm.height() + 10, fm.height() + 10
        plot = QRectF(left, top, self.width() - left - right, self.height() - top - bottom)
        if plot.width() < 20 or plot.height() < 20:
            return
        steps = max([self.total_steps, 1] + [s for s, _ in self.loss] + [s for s, _ in self.val])
        hi = nice_ceiling(max([v for _, v in self.loss] + [1e-6]))

        def x(step: float) -> float:
            return plot.left() + plot.width() * step / steps

        def y_loss(v: float) -> float:
            return plot.bottom() - plot.height() * v / hi

        def y_map(v: float) -> float:
            return plot.bottom() - plot.height() * v

        # grid, axes and their labels
        p.setPen(QPen(grid, 1))
        for i in range(5):
            yy = plot.top() + plot.height() * i / 4
            p.drawLine(QPointF(plot.left(), yy), QPointF(plot.right(), yy))
        p.setPen(fg)
        for i in range(5):
            yy = plot.top() + plot.height() * i / 4
            p.drawText(QRectF(0, yy - fm.height() / 2, left - 6, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{hi * (4 - i) / 4:g}")  # fmt: skip
            p.drawText(QRectF(plot.right() + 6, yy - fm.height() / 2, right, fm.height()),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       f"{25 * (4 - i)} %")  # fmt: skip
        p.drawText(QRectF(plot.left(), plot.bottom() + 4, plot.width(), fm.height()),
                   Qt.AlignmentFlag.AlignLeft, "0")  # fmt: skip
        p.drawText(QRectF(plot.left(), plot.bottom() + 4, plot.width(), fm.height()),
                   Qt.AlignmentFlag.AlignRight, f"{steps} steps")  # fmt: skip
        # legend
        lx = plot.left()
        for colour, name in ((AFTER, "training loss"), (VAL, "validation mAP (right axis)")):
            p.fillRect(QRectF(lx, 4 + fm.height() / 2 - 2, 14, 4), colour)
            p.setPen(fg)
            p.drawText(QPointF(lx + 18, 4 + fm.ascent()), name)
            lx += 18 + fm.horizontalAdvance(name) + 18
        if not self.loss and not self.val:
            p.setPen(grid.darker(150) if grid.lightness() > 128 else fg)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "Waiting for the first steps…")
            return
        if self.best_step is not None:
            bx = x(self.best_step)
            p.setPen(QPen(fg, 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(bx, plot.top()), QPointF(bx, plot.bottom()))
            p.drawText(QPointF(bx + 4, plot.top() + fm.ascent()), "kept")
        if self.loss:
            path = QPainterPath(QPointF(x(self.loss[0][0]), y_loss(self.loss[0][1])))
            for s, v in self.loss[1:]:
                path.lineTo(x(s), y_loss(v))
            p.setPen(QPen(AFTER, 2))
            p.drawPath(path)
        p.setPen(QPen(VAL.darker(130), 1))
        p.setBrush(VAL)
        for s, v in self.val:
            p.drawEllipse(QPointF(x(s), y_map(v)), 3.5, 3.5)


class BeforeAfterChart(QWidget):
    """Horizontal bar pairs, one pair per row: before (grey) and after (accent), 0-100 %."""

    ROW_H = 34

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.title = title
        self.rows: list[tuple[str, float | None, float | None]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.setAccessibleName(title)

    def set_rows(self, rows: list[tuple[str, float | None, float | None]]) -> None:
        """(name, before, after) per row; values are fractions 0..1, None when unknown."""
        self.rows = list(rows)
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        fm = QFontMetrics(self.font())
        return QSize(420, 2 * fm.height() + 14 + self.ROW_H * max(1, len(self.rows)))

    def minimumSizeHint(self) -> QSize:
        return QSize(300, self.sizeHint().height())

    def paintEvent(self, _e) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = QFontMetrics(self.font())
        fg, grid = _text_colour(self), _grid_colour(self)
        bold = self.font()
        bold.setBold(True)
        p.setFont(bold)
        p.setPen(fg)
        p.drawText(QPointF(0, fm.ascent() + 2), self.title)
        p.setFont(self.font())
        # legend, right-aligned on the title line
        lx = self.width() - fm.horizontalAdvance("before") - fm.horizontalAdvance("after") - 60
        for colour, name in ((BEFORE, "before"), (AFTER, "after")):
            p.fillRect(QRectF(lx, fm.height() / 2 - 3, 12, 8), colour)
            p.drawText(QPointF(lx + 16, fm.ascent() + 2), name)
            lx += 16 + fm.horizontalAdvance(name) + 14
        top = fm.height() + 10
        names = [r[0] for r in self.rows] or [""]
        name_w = min(max(fm.horizontalAdvance(n) for n in names) + 12, self.width() // 3)
        value_w = fm.horizontalAdvance("100 %") + 8
        bar_x, bar_w = name_w, max(10, self.width() - name_w - value_w)
        p.setPen(QPen(grid, 1))
        for i in range(5):
            gx = bar_x + bar_w * i / 4
            p.drawLine(QPointF(gx, top), QPointF(gx, top + self.ROW_H * len(self.rows)))
        bar_h = (self.ROW_H - 8) / 2
        for r, (name, before, after) in enumerate(self.rows):
            y0 = top + r * self.ROW_H
            p.setPen(fg)
            p.drawText(QRectF(0, y0, name_w - 8, self.ROW_H),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(name, Qt.TextElideMode.ElideMiddle, name_w - 8))  # fmt: skip
            for k, (v, colour) in enumerate(((before, BEFORE), (after, AFTER))):
                by = y0 + 3 + k * bar_h
                if not _ok(v):
                    p.setPen(fg)
                    p.drawText(
                        QRectF(bar_x + 4, by, bar_w, bar_h), Qt.AlignmentFlag.AlignVCenter, "—"
                    )
                    continue
                w = bar_w * max(0.0, min(1.0, v))
                p.fillRect(QRectF(bar_x, by, w, bar_h - 1), colour)
                p.setPen(fg)
                p.drawText(QRectF(bar_x + w + 4, by - 2, value_w + 4, bar_h + 4),
                           Qt.AlignmentFlag.AlignVCenter, f"{100 * v:.0f} %")  # fmt: skip
