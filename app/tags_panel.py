"""The tag browser: vocabularies -> labels with photo counts, and a threshold slider.

Clicking a label (or Enter on it) asks the window to show the photos carrying it,
combined with whatever is typed and the filters. Selecting a label shows its threshold:
dragging the slider asks the engine, debounced, which photos would enter or leave
(``tag_threshold`` with ``preview``) and the window shows them at once; letting go (or
Save) stores it, and "Reset" goes back to the calibrated threshold.

The slider moves on a logit scale: sigmoid models put most probabilities near 0 or 1,
so equal steps in logit space are equal steps in how sure the model is.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .tag_catalog import TagCatalog

# (vocab, label) on label items, (vocab, None) on vocabulary items
TagRole = Qt.ItemDataRole.UserRole + 10
PREVIEW_DEBOUNCE_MS = 120
SLIDER_STEPS = 1000
LOGIT_SPAN = 9.2  # the slider covers probabilities from about 0.0001 to 0.9999
SOURCES = {"default": "default", "calibrated": "calibrated from your answers", "user": "set by you"}


def to_slider(p: float) -> int:
    """Probability -> slider position (logit scale)."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    x = math.log(p / (1 - p))
    x = min(max(x, -LOGIT_SPAN), LOGIT_SPAN)
    return round((x + LOGIT_SPAN) / (2 * LOGIT_SPAN) * SLIDER_STEPS)


def from_slider(v: int) -> float:
    """Slider position -> probability, rounded to what the label shows (never 0 or 1)."""
    x = v / SLIDER_STEPS * 2 * LOGIT_SPAN - LOGIT_SPAN
    p = 1 / (1 + math.exp(-x))
    digits = 4 if p < 0.01 or p > 0.99 else 3
    return min(max(round(p, digits), 1e-4), 1 - 1e-4)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def tag_hit(h: dict) -> dict:
    """A tag_photos hit as a grid hit (the grid and preview read SearchHit's shape)."""
    return {"image_id": h["image_id"], "score": h.get("score") or 0.0, "path": h["path"],
            "online": h.get("online", True), "metadata": {}, "tag_state": h.get("state")}  # fmt: skip


class ThresholdBox(QGroupBox):
    """The selected label's threshold: a slider with a live preview, Save and Reset."""

    # status text, and grid hits of the photos that would enter or leave ([] when none)
    previewed = Signal(str, list)
    saved = Signal(str, str, dict)  # vocab, label, tag_threshold's result

    def __init__(self, bridge, catalog: TagCatalog, parent=None):
        super().__init__("Threshold", parent)
        self.bridge = bridge
        self.catalog = catalog
        self.ref: tuple[str, str] | None = None
        self.saved_threshold = 0.5
        self._seq = 0
        self.last_preview: dict | None = None

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setPageStep(SLIDER_STEPS // 20)
        self.slider.setSingleStep(SLIDER_STEPS // 200)
        self.slider.setAccessibleName("Tag threshold")
        self.slider.setToolTip(
            "Drag to see which photos would gain or lose this tag; let go to keep it"
        )
        self.value_label = QLabel(objectName="hint")
        self.change_label = QLabel(wordWrap=True)
        self.change_label.setAccessibleName("Photos that would enter or leave")
        self.save_btn = QPushButton("Save")
        self.save_btn.setToolTip("Keep this threshold (letting go of the slider keeps it too)")
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.setToolTip("Go back to the calibrated threshold")
        self.save_btn.clicked.connect(self.save)
        self.reset_btn.clicked.connect(self.reset)
        self.slider.valueChanged.connect(self._on_value)
        self.slider.sliderReleased.connect(self.save)
        self._debounce = QTimer(
            self, singleShot=True, interval=PREVIEW_DEBOUNCE_MS, timeout=self.preview
        )

        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_btn)
        row.addWidget(self.reset_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.slider)
        lay.addWidget(self.value_label)
        lay.addLayout(row)
        lay.addWidget(self.change_label)
        self.show_label(None)

    # -- which label ---------------------------------------------------------------------------

    def show_label(self, ref: tuple[str, str] | None) -> None:
        """Show the threshold of label `ref` (or nothing)."""
        changed = ref != self.ref
        self.ref = ref
        info = self.catalog.label(*ref) if ref else None
        self.setVisible(info is not None)
        if info is None:
            return
        if not changed and (self.slider.isSliderDown() or self.save_btn.isEnabled()):
            return  # a refresh while the user drags (or has not saved yet): the user's value wins
        self.setTitle(f"Threshold for “{ref[1]}”")
        self.saved_threshold = info["threshold"]
        self.slider.blockSignals(True)
        self.slider.setValue(to_slider(info["threshold"]))
        self.slider.blockSignals(False)
        self._show_value(info["threshold"], info["threshold_source"])
        self.change_label.setText(f"{plural(info['tagged'], 'photo')} carry this tag.")
        self.save_btn.setEnabled(False)
        self.reset_btn.setEnabled(info["threshold_source"] == "user")
        if changed:
            self.last_preview = None

    def _show_value(self, p: float, source: str | None) -> None:
        how = f" — {SOURCES.get(source, source)}" if source else " — not saved yet"
        self.value_label.setText(f"{p:.4g}{how}")

    # -- preview and save ----------------------------------------------------------------------

    def value(self) -> float:
        return from_slider(self.slider.value())

    def _on_value(self, _v: int) -> None:
        self._show_value(self.value(), None)
        self.save_btn.setEnabled(self.ref is not None)
        self._debounce.start()

    def preview(self) -> None:
        """Ask which photos would enter or leave at the slider's threshold (nothing is saved)."""
        self._debounce.stop()
        if self.ref is None:
            return
        self._seq += 1
        seq, ref = self._seq, self.ref
        params = {"vocab": ref[0], "label": ref[1], "threshold": self.value(), "preview": True}
        self.bridge.call("tag_threshold", params, on_result=lambda r: self._on_preview(seq, ref, r),
                         on_error=lambda e: self._on_error(seq, e), context=self)  # fmt: skip

    def _on_preview(self, seq: int, ref, r: dict) -> None:
        if seq != self._seq or ref != self.ref:
            return  # the slider moved on
        self.last_preview = r
        # The engine sends the moved photos themselves (the best of each side, with totals).
        n_in, n_out = r["entered_total"], r["left_total"]
        text = (f"At {r['threshold']:.4g}: {plural(r['tagged'], 'photo')} — "
                f"{n_in:,} would enter, {n_out:,} would leave.")  # fmt: skip
        shown = len(r["entered_hits"]) + len(r["left_hits"])
        if shown < n_in + n_out:
            text += f" Showing {shown:,}."
        self.change_label.setText(text)
        hits = [tag_hit(h) for h in (*r["entered_hits"], *r["left_hits"])]
        self.previewed.emit(f"“{ref[1]}” {text}", hits)

    def save(self) -> None:
        """Store the slider's threshold for this label."""
        self._send(self.value())

    def reset(self) -> None:
        """Back to the calibrated (or default) threshold."""
        self._send(None)

    def _send(self, threshold: float | None) -> None:
        self._debounce.stop()
        if self.ref is None:
            return
        self._seq += 1
        seq, ref = self._seq, self.ref
        params = {"vocab": ref[0], "label": ref[1], "threshold": threshold}
        self.save_btn.setEnabled(False)
        self.bridge.call("tag_threshold", params, on_result=lambda r: self._on_saved(seq, ref, r),
                         on_error=lambda e: self._on_error(seq, e), context=self)  # fmt: skip

    def _on_saved(self, seq: int, ref, r: dict) -> None:
        self.last_preview = None
        if ref == self.ref:
            self.saved_threshold = r["threshold"]
            if seq == self._seq:
                self.slider.blockSignals(True)
                self.slider.setValue(to_slider(r["threshold"]))
                self.slider.blockSignals(False)
                self._show_value(r["threshold"], r["threshold_source"])
                self.reset_btn.setEnabled(r["threshold_source"] == "user")
                self.change_label.setText(f"{plural(r['tagged'], 'photo')} carry this tag.")
        self.previewed.emit("", [])
        self.saved.emit(ref[0], ref[1], r)

    def _on_error(self, seq: int, e) -> None:
        if seq == self._seq and e.code != "engine_died":
            self.change_label.setText(e.message)


class TagsPanel(QWidget):
    """The tag browser. Signals carry what the user asked for; the window acts on them."""

    tagActivated = Signal(str, str)  # vocab, label: show the photos carrying it
    clearRequested = Signal()  # stop filtering by tag

    def __init__(self, bridge, catalog: TagCatalog, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.catalog = catalog
        self.active: tuple[str, str] | None = None  # the label the grid is filtered by
        self._dialog = None
        self.setMinimumWidth(220)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Find a tag")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Find a tag")
        self.filter_edit.textChanged.connect(self._apply_find)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Photos"])
        self.tree.setAccessibleName("Tags")
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemClicked.connect(lambda it, _c: self._activate(it))
        self.tree.itemActivated.connect(lambda it, _c: self._activate(it))
        self.tree.currentItemChanged.connect(lambda cur, _p: self._on_current(cur))
        self.clear_btn = QPushButton("Show all photos")
        self.clear_btn.setToolTip("Stop filtering by tag")
        self.clear_btn.clicked.connect(self.clearRequested)
        self.clear_btn.setEnabled(False)
        self.edit_btn = QPushButton("Vocabularies…")
        self.edit_btn.setToolTip("Create, edit, import and export tag vocabularies")
        self.edit_btn.clicked.connect(lambda: self.open_editor())

        self.empty = QWidget()
        self.empty_text = QLabel(
            "No vocabularies yet — start from a starter vocabulary, or make your own.",
            wordWrap=True, objectName="emptyHint", alignment=Qt.AlignmentFlag.AlignCenter,
        )  # fmt: skip
        self.starter_btn = QPushButton()
        self.starter_btn.clicked.connect(self._start_from_starter)
        self.new_btn = QPushButton("New vocabulary…")
        self.new_btn.clicked.connect(lambda: self.open_editor(new=True))
        el = QVBoxLayout(self.empty)
        el.addStretch(1)
        el.addWidget(self.empty_text)
        el.addWidget(self.starter_btn)
        el.addWidget(self.new_btn)
        el.addStretch(2)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.tree)

        self.threshold = ThresholdBox(bridge, catalog)
        self.status = QLabel(wordWrap=True, objectName="hint")
        self.status.hide()

        buttons = QHBoxLayout()
        buttons.addWidget(self.clear_btn)
        buttons.addWidget(self.edit_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 4, 8)
        lay.addWidget(self.filter_edit)
        lay.addWidget(self.stack, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.threshold)
        catalog.changed.connect(self.rebuild)
        catalog.failed.connect(self._show_status)
        self.rebuild()

    # -- showing the catalog ---------------------------------------------------------------------

    def rebuild(self) -> None:
        """Redraw the tree from the catalog, keeping the current label and what is expanded."""
        cur = self.current_ref()
        collapsed = {
            self.tree.topLevelItem(i).data(0, TagRole)[0]
            for i in range(self.tree.topLevelItemCount())
            if not self.tree.topLevelItem(i).isExpanded()
        }
        scroll = self.tree.verticalScrollBar().value()
        self.tree.blockSignals(True)
        self.tree.clear()
        restore = None
        for v in self.catalog.vocabs:
            top = QTreeWidgetItem([v["name"], ""])
            top.setData(0, TagRole, (v["name"], None))
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            top.setToolTip(0, f"{v['name']}: {plural(v['labels'], 'label')}")
            for lab in v["label_list"]:
                it = QTreeWidgetItem([lab["name"], f"{lab['tagged']:,}"])
                it.setData(0, TagRole, (v["name"], lab["name"]))
                it.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                tip = (f"{plural(lab['tagged'], 'photo')} tagged “{lab['name']}” · "
                       f"{lab['confirmed']:,} confirmed · {lab['rejected']:,} rejected · "
                       f"threshold {lab['threshold']:.3g} ({SOURCES.get(lab['threshold_source'], '')})")  # fmt: skip
                it.setToolTip(0, tip)
                it.setToolTip(1, tip)
                if (v["name"], lab["name"]) == self.active:
                    f = it.font(0)
                    f.setBold(True)
                    it.setFont(0, f)
                top.addChild(it)
                if (v["name"], lab["name"]) == cur:
                    restore = it
            self.tree.addTopLevelItem(top)
            top.setExpanded(v["name"] not in collapsed)
        if restore is not None:
            self.tree.setCurrentItem(restore)
        self.tree.verticalScrollBar().setValue(scroll)
        self.tree.blockSignals(False)
        self._apply_find(self.filter_edit.text())
        has = bool(self.catalog.vocabs)
        self.stack.setCurrentWidget(self.tree if has else self.empty)
        self.filter_edit.setEnabled(has)
        starters = self.catalog.starters
        self.starter_btn.setVisible(bool(starters))
        if starters:
            self.starter_btn.setText(f"Start from “{starters[0]}”")
        self.threshold.show_label(cur if restore is not None else None)

    def _apply_find(self, text: str) -> None:
        needle = text.strip().casefold()
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            any_shown = False
            for j in range(top.childCount()):
                child = top.child(j)
                hide = bool(needle) and needle not in child.text(0).casefold()
                child.setHidden(hide)
                any_shown |= not hide
            top.setHidden(bool(needle) and not any_shown)

    def _show_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def set_enabled(self, ready: bool) -> None:
        for w in (self.edit_btn, self.starter_btn, self.new_btn, self.threshold):
            w.setEnabled(ready)

    # -- the user ------------------------------------------------------------------------------

    def current_ref(self) -> tuple[str, str] | None:
        it = self.tree.currentItem()
        ref = it.data(0, TagRole) if it is not None else None
        return ref if ref and ref[1] is not None else None

    def item_for(self, vocab: str, label: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, TagRole) == (vocab, label):
                    return top.child(j)
        return None

    def _on_current(self, item) -> None:
        self.threshold.show_label(self.current_ref())

    def _activate(self, item: QTreeWidgetItem) -> None:
        ref = item.data(0, TagRole)
        if ref and ref[1] is not None:
            self.tagActivated.emit(ref[0], ref[1])

    def set_active(self, ref: tuple[str, str] | None) -> None:
        """The window says which label the grid is filtered by (None: none)."""
        self.active = ref
        self.clear_btn.setEnabled(ref is not None)
        self.rebuild()

    def _start_from_starter(self) -> None:
        if not self.catalog.starters:
            return
        key = self.catalog.starters[0]
        self.starter_btn.setEnabled(False)
        self._show_status(f"Tagging your photos with “{key}”…")

        def done(r):
            self.starter_btn.setEnabled(True)
            self._show_status("")
            self.catalog.set_vocab(r["vocab"])

        def failed(e):
            self.starter_btn.setEnabled(True)
            self._show_status(e.message)

        self.bridge.call("vocab_create", {"name": key, "starter": key}, on_result=done,
                         on_error=failed, context=self)  # fmt: skip

    def open_editor(self, new: bool = False):
        """The vocabulary editor (one per panel; shown again when open)."""
        from .vocab_dialog import VocabDialog

        if self._dialog is None:
            self._dialog = VocabDialog(self.bridge, self.catalog, self.window())
        self._dialog.show()
        self._dialog.raise_()
        if new:
            self._dialog.new_vocab()
        return self._dialog
