"""Small widgets of the main window: the banner above the results, what the results area says
when it has nothing to show, and the search bar's chips."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class Banner(QFrame):
    """A one-line notice above the results, with an optional action and a close button."""

    def __init__(self, parent=None):
        super().__init__(parent, objectName="banner")
        self.text = QLabel(wordWrap=True, objectName="bannerText")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.action = QPushButton()
        self.action.hide()
        close = QToolButton(text="✕", autoRaise=True)
        close.setAccessibleName("Dismiss")
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 8, 8, 8)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.action)
        lay.addWidget(close)
        self._slot = None
        self.kind = ""
        self.hide()

    def show_message(
        self, kind: str, html: str, level: str = "info", action: str = "", slot=None
    ) -> None:
        self.kind = kind
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.text.setText(html)
        if self._slot is not None:
            self.action.clicked.disconnect(self._slot)
            self._slot = None
        if action and slot is not None:
            self.action.setText(action)
            self.action.clicked.connect(slot)
            self._slot = slot
            self.action.show()
        else:
            self.action.hide()
        self.show()

    def dismiss(self, kind: str) -> None:
        if self.kind == kind:
            self.hide()


class EmptyState(QWidget):
    """What the results area says when there is nothing to show, and why."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = QLabel(
            objectName="emptyTitle", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True
        )
        self.hint = QLabel(
            objectName="emptyHint", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True
        )
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        self.button = QPushButton()
        self.button.hide()
        self._slot = None
        lay = QVBoxLayout(self)
        lay.addStretch(2)
        lay.addWidget(self.title)
        lay.addSpacing(6)
        lay.addWidget(self.hint)
        lay.addSpacing(12)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addStretch(3)
        self.hint.setMaximumWidth(560)
        lay.setAlignment(self.hint, Qt.AlignmentFlag.AlignHCenter)

    def set(self, title: str, hint: str = "", button: str = "", slot=None) -> None:
        self.title.setText(title)
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))
        if self._slot is not None:
            self.button.clicked.disconnect(self._slot)
            self._slot = None
        if button and slot is not None:
            self.button.setText(button)
            self.button.clicked.connect(slot)
            self._slot = slot
            self.button.show()
        else:
            self.button.hide()



def chip(close_tip: str, on_close) -> tuple[QFrame, QLabel]:
    """A hidden pill for the search bar: a label and a ✕ that calls `on_close`."""
    chip, label = QFrame(objectName="chip"), QLabel()
    close = QToolButton(text="✕", objectName="chipClose")
    close.setToolTip(close_tip)
    close.setAccessibleName(close_tip)
    close.clicked.connect(on_close)
    lay = QHBoxLayout(chip)
    lay.setContentsMargins(10, 2, 4, 2)
    lay.addWidget(label)
    lay.addWidget(close)
    chip.hide()
    return chip, label
