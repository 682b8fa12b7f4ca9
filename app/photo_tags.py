"""The preview's tag list: one photo's tags with score and state, confirm / reject, add.

A tag is *automatic* when the model's probability reached the label's threshold,
*confirmed* or *rejected* when the user said so. ✓ confirms (again: forgets the answer),
✗ rejects (again: forgets it). "Add" confirms any label of any vocabulary on the photo.
Every answer goes to the engine (``tag_answer``), which recalibrates the label's
threshold; the list is then asked for again (``tag_photo``) so it shows what is stored.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .tag_catalog import TagCatalog

SEP = "\x1f"  # joins vocabulary and label in the combo's item data (Qt compares plain strings)
STATE_TEXT = {"auto": "auto", "confirmed": "confirmed", "rejected": "rejected"}
STATE_TIP = {
    "auto": "tagged automatically: the model's probability reached the label's threshold",
    "confirmed": "you confirmed this tag",
    "rejected": "you rejected this tag: the photo never carries it",
}
MAX_LIST_HEIGHT = 168  # px; longer tag lists scroll, so the photo keeps its room


class PhotoTagsView(QWidget):
    """Tags of the photo in the preview."""

    answered = Signal(str, str, str)  # vocab, label, state: the engine has stored an answer
    shown = Signal()  # the list was redrawn from an engine answer

    def __init__(self, bridge, catalog: TagCatalog, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.catalog = catalog
        self.path: str | None = None
        self.tags: list[dict] = []
        self.rows: dict[tuple[str, str], dict[str, QWidget]] = {}
        self._ticket = 0

        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(2)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.grid_host)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.none_label = QLabel("No tags yet.", objectName="hint")
        self.message = QLabel(wordWrap=True, objectName="hint")
        self.message.hide()
        self.add_combo = QComboBox()
        self.add_combo.setAccessibleName("Label to add to this photo")
        self.add_combo.setMinimumContentsLength(10)
        self.add_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.add_btn = QPushButton("Add tag")
        self.add_btn.setToolTip("Confirm this label on the photo")
        self.add_btn.clicked.connect(self.add_selected)
        add_row = QHBoxLayout()
        add_row.setContentsMargins(0, 0, 0, 0)
        add_row.addWidget(self.add_combo, 1)
        add_row.addWidget(self.add_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.scroll)
        lay.addWidget(self.none_label)
        lay.addWidget(self.message)
        lay.addLayout(add_row)
        catalog.changed.connect(self._fill_combo)
        self._fill_combo()
        self.show_tags(None, [])

    # -- showing -------------------------------------------------------------------------------

    def show_tags(self, path: str | None, tags: list[dict], loading: bool = False) -> None:
        """Show `tags` (protocol PhotoTag dicts) of the photo at `path` (`loading`: still asked for)."""
        if path != self.path:
            self.message.hide()
        self.path = path
        self.tags = list(tags)
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.rows = {}
        many_vocabs = len({t["vocab"] for t in tags}) > 1
        order = {"confirmed": 0, "auto": 1, "rejected": 2}
        tags = sorted(tags, key=lambda t: (order.get(t["state"], 3), -(t.get("score") or 0)))
        for r, t in enumerate(tags):
            ref = (t["vocab"], t["label"])
            name = QLabel(f"{t['vocab']}: {t['label']}" if many_vocabs else t["label"])
            # long names are cut at the pane's edge (the tooltip has them whole), never the buttons
            name.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            name.setMinimumWidth(48)
            name.setToolTip(
                f"{t['label']} (vocabulary “{t['vocab']}”), threshold {t['threshold']:.3g}"
            )
            score = QLabel(
                "—" if t.get("score") is None else f"{t['score']:.2f}", objectName="hint"
            )
            score.setToolTip("the model's probability for this label")
            state = QLabel(STATE_TEXT.get(t["state"], t["state"]), objectName="hint")
            state.setToolTip(STATE_TIP.get(t["state"], ""))
            if t["state"] == "rejected":
                f = name.font()
                f.setStrikeOut(True)
                name.setFont(f)
            ok = self._button("✓", f"Confirm “{t['label']}”", t["state"] == "confirmed")
            no = self._button("✗", f"Reject “{t['label']}”", t["state"] == "rejected")
            ok.clicked.connect(
                lambda _=False, ref=ref, s=t["state"]: self.answer(
                    ref, "none" if s == "confirmed" else "confirmed"
                )
            )
            no.clicked.connect(lambda _=False, ref=ref, s=t["state"]: self.answer(ref, "none" if s == "rejected" else "rejected"))  # fmt: skip
            for c, w in enumerate((name, score, state, ok, no)):
                self.grid.addWidget(w, r, c)
            self.rows[ref] = {
                "name": name,
                "score": score,
                "state": state,
                "confirm": ok,
                "reject": no,
            }
        self.grid.setColumnStretch(0, 1)
        self.scroll.setVisible(bool(tags))
        self.scroll.setFixedHeight(min(MAX_LIST_HEIGHT, self.grid_host.sizeHint().height() + 2))
        self.none_label.setVisible(path is not None and not tags)
        if loading:
            self.none_label.setText("…")
        elif self.catalog.vocabs:
            self.none_label.setText("No tags yet.")
        else:
            self.none_label.setText("No tags yet — make a vocabulary in the Tags panel (Ctrl+T).")
        self._enable()

    @staticmethod
    def _button(text: str, name: str, checked: bool) -> QToolButton:
        b = QToolButton(text=text, checkable=True, checked=checked, autoRaise=True)
        b.setAccessibleName(name)
        b.setToolTip(name + (" (click again to undo)" if checked else ""))
        b.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        return b

    def _fill_combo(self) -> None:
        current = self.add_combo.currentData()
        self.add_combo.clear()
        many = len(self.catalog.vocabs) > 1
        for vocab, label in self.catalog.all_labels():
            self.add_combo.addItem(f"{label} ({vocab})" if many else label, f"{vocab}{SEP}{label}")
        i = self.add_combo.findData(current) if current is not None else -1
        self.add_combo.setCurrentIndex(max(i, 0) if self.add_combo.count() else -1)
        self._enable()

    def _enable(self) -> None:
        on = self.path is not None and self.add_combo.count() > 0
        self.add_combo.setEnabled(on)
        self.add_btn.setEnabled(on)

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # -- answering -----------------------------------------------------------------------------

    def select_label(self, vocab: str, label: str) -> bool:
        """Choose `label` in the "add" list; False when it is not there."""
        i = self.add_combo.findData(f"{vocab}{SEP}{label}")
        if i >= 0:
            self.add_combo.setCurrentIndex(i)
        return i >= 0

    def add_selected(self) -> None:
        key = self.add_combo.currentData()
        if key:
            vocab, label = key.split(SEP, 1)
            self.answer((vocab, label), "confirmed")

    def answer(self, ref: tuple[str, str], state: str) -> None:
        """Confirm / reject / forget label `ref` on this photo."""
        if self.path is None:
            return
        path = self.path
        params = {"vocab": ref[0], "label": ref[1], "photos": [path], "state": state}
        for w in self.rows.get(ref, {}).values():
            w.setEnabled(False)
        self.bridge.call("tag_answer", params, on_result=lambda r: self._on_answered(path, ref, state),
                         on_error=lambda e: self._on_failed(path, e), context=self)  # fmt: skip

    def _on_answered(self, path: str, ref: tuple[str, str], state: str) -> None:
        self.answered.emit(ref[0], ref[1], state)
        if path == self.path:
            self._say("")
            self.reload()

    def _on_failed(self, path: str, e) -> None:
        if path == self.path:
            self._say(e.message)
            self.show_tags(self.path, self.tags)

    def reload(self) -> None:
        """Ask the engine for this photo's tags again."""
        if self.path is None:
            return
        self._ticket += 1
        ticket, path = self._ticket, self.path

        def got(r):
            if ticket == self._ticket and path == self.path:
                self.show_tags(path, r["tags"])
                self.shown.emit()

        self.bridge.call("tag_photo", {"photo": path}, on_result=got,
                         on_error=lambda e: self._on_failed(path, e), context=self)  # fmt: skip
