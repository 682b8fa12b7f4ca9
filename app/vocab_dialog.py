"""The vocabulary editor: create, rename, delete, import and export vocabularies, and edit
their labels (name, synonyms, prompts of their own) and prompt templates.

Edits to the label table are collected and sent as one ``vocab_update`` when the user
applies them: renamed labels keep their answers and thresholds, new rows are added,
removed rows are removed. Empty and duplicate names are refused here with a message
before anything is sent; whatever the engine refuses (a malformed import file, a
template without ``{}``) is shown exactly as the engine words it, since it names the
line or the field at fault. Creating, editing and importing re-tag the library before
the engine answers; a busy bar says so meanwhile, and the window stays responsive.
"""

from __future__ import annotations

import os
import unicodedata

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QListWidget,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .tag_catalog import TagCatalog

OrigRole = Qt.ItemDataRole.UserRole + 20  # the label's name as stored (None: a new row)
COL_NAME, COL_SYN, COL_PROMPTS, COL_COUNT = range(4)
FILE_FILTER = "Vocabulary files (*.json *.csv *.txt);;JSON (*.json);;CSV (*.csv);;Text, one label per line (*.txt)"


def label_key(name: str) -> str:
    """What makes two label names the same (the engine's rule: case and width folded)."""
    return unicodedata.normalize("NFKC", " ".join(name.split())).casefold()


def split_list(text: str, sep: str) -> list[str]:
    return [p for p in (" ".join(x.split()) for x in text.split(sep)) if p]


class VocabDialog(QDialog):
    """Non-modal editor over the shared TagCatalog."""

    busyChanged = Signal(bool)
    message = Signal(str)  # each message shown to the user (tests listen)

    def __init__(self, bridge, catalog: TagCatalog, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Tag vocabularies")
        self.resize(860, 560)
        self.bridge = bridge
        self.catalog = catalog
        self.current: str | None = None
        self._removed: list[str] = []
        self._loading = False
        self.dirty = False
        self.busy = False

        # left: the vocabularies
        self.vocab_list = QListWidget()
        self.vocab_list.setAccessibleName("Vocabularies")
        self.vocab_list.currentTextChanged.connect(self._on_select)
        self.new_btn = QPushButton("New…")
        self.new_btn.clicked.connect(lambda: self.new_vocab())
        self.starter_btn = QToolButton(
            text="From starter", popupMode=QToolButton.ToolButtonPopupMode.InstantPopup
        )
        self.starter_btn.setToolTip("Start from one of the vocabularies that come with photosift")
        self.starter_menu = QMenu(self.starter_btn)
        self.starter_btn.setMenu(self.starter_menu)
        self.import_btn = QPushButton("Import…")
        self.import_btn.setToolTip(
            "Read a vocabulary from a JSON, CSV or text file (one label per line)"
        )
        self.import_btn.clicked.connect(lambda: self.import_file())
        self.export_btn = QPushButton("Export…")
        self.export_btn.clicked.connect(lambda: self.export_file())
        self.rename_btn = QPushButton("Rename…")
        self.rename_btn.clicked.connect(lambda: self.rename_vocab())
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.clicked.connect(lambda: self.delete_vocab())
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("Vocabularies", objectName="previewTitle"))
        ll.addWidget(self.vocab_list, 1)
        for pair in ((self.new_btn, self.starter_btn), (self.import_btn, self.export_btn),
                     (self.rename_btn, self.delete_btn)):  # fmt: skip
            row = QHBoxLayout()
            for b in pair:
                row.addWidget(b)
            ll.addLayout(row)

        # right: the selected vocabulary's labels and templates
        self.title = QLabel(objectName="previewTitle")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Label", "Synonyms", "Own prompts", "Photos"])
        for col, tip in ((COL_SYN, "Other names for the label, separated by commas; each goes through the templates"),
                         (COL_PROMPTS, "Whole prompts used as written instead of the templates, separated by |"),
                         (COL_COUNT, "Photos carrying the label now")):  # fmt: skip
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.setAccessibleName("Labels")
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Interactive)
        hh.setSectionResizeMode(COL_SYN, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(COL_PROMPTS, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(COL_COUNT, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(COL_NAME, 160)
        self.table.itemChanged.connect(self._on_edited)
        self.add_label_btn = QPushButton("Add label")
        self.add_label_btn.clicked.connect(lambda: self.add_label())
        self.remove_label_btn = QPushButton("Remove label")
        self.remove_label_btn.clicked.connect(self.remove_selected_labels)
        self.remove_label_btn.setToolTip("Remove the selected labels (Delete); Apply sends it")
        QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table, self.remove_selected_labels,
                  context=Qt.ShortcutContext.WidgetShortcut)  # fmt: skip
        self.templates = QPlainTextEdit()
        self.templates.setAccessibleName("Prompt templates")
        self.templates.setPlaceholderText(
            "One per line, with {} where the label goes: a photo of a {}."
        )
        self.templates.setMaximumHeight(96)
        self.templates.textChanged.connect(self._on_templates_edited)
        self.auto_box = QCheckBox("Tag photos automatically")
        self.auto_box.setToolTip(
            "On: photos get these labels when they match well enough. Off: only photos you "
            "confirmed carry them (for keywords such as places, people or years)"
        )
        self.auto_box.toggled.connect(self._on_templates_edited)
        self.apply_btn = QPushButton("Apply changes")
        self.apply_btn.setDefault(True)
        self.apply_btn.clicked.connect(self.apply)
        self.revert_btn = QPushButton("Revert")
        self.revert_btn.clicked.connect(lambda: self._show_vocab(self.current))
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.title)
        rl.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_label_btn)
        row.addWidget(self.remove_label_btn)
        row.addStretch(1)
        rl.addLayout(row)
        tl = QLabel("Prompt templates (their text vectors are averaged for each label and synonym; "
                    "labels with prompts of their own use those instead)", wordWrap=True, objectName="hint")  # fmt: skip
        rl.addWidget(tl)
        rl.addWidget(self.templates)
        rl.addWidget(self.auto_box)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.revert_btn)
        row.addWidget(self.apply_btn)
        rl.addLayout(row)

        self.empty = QLabel("No vocabularies yet — start from a starter vocabulary, import a file, "
                            "or make a new one.", wordWrap=True, objectName="emptyHint",
                            alignment=Qt.AlignmentFlag.AlignCenter)  # fmt: skip
        self.right = right
        split = QSplitter()
        split.addWidget(left)
        rs = QWidget()
        rsl = QVBoxLayout(rs)
        rsl.setContentsMargins(0, 0, 0, 0)
        rsl.addWidget(self.empty, 1)
        rsl.addWidget(right, 1)
        split.addWidget(rs)
        split.setSizes([220, 640])
        split.setChildrenCollapsible(False)

        self.msg = QLabel(wordWrap=True, objectName="vocabMessage")
        self.msg.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.msg.hide()
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy; determinate once the engine sends re-tagging progress
        self.bar.setMaximumHeight(10)
        self.bar.setTextVisible(False)
        self.bar.hide()
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(self.msg, 1)
        bottom.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(self.bar)
        lay.addLayout(bottom)

        self._request = None  # id of the call the busy bar is for (its progress events carry it)
        self._busy_text = ""
        bridge.event.connect(self._on_event)
        catalog.changed.connect(self._on_catalog)
        self._on_catalog()
        if not catalog.loaded:
            catalog.refresh()

    # -- the catalog ---------------------------------------------------------------------------

    def _on_catalog(self) -> None:
        names = [v["name"] for v in self.catalog.vocabs]
        keep = self.current if self.current in names else (names[0] if names else None)
        self.vocab_list.blockSignals(True)
        self.vocab_list.clear()
        self.vocab_list.addItems(names)
        if keep is not None:
            self.vocab_list.setCurrentRow(names.index(keep))
        self.vocab_list.blockSignals(False)
        self.starter_menu.clear()
        for key in self.catalog.starters:
            self.starter_menu.addAction(key, lambda key=key: self.new_vocab(starter=key))
        self.starter_btn.setEnabled(bool(self.catalog.starters) and not self.busy)
        if not self.dirty or keep != self.current:
            self._show_vocab(keep)
        self._enable()

    def _on_select(self, name: str) -> None:
        if name == self.current:
            return
        if self.dirty and self.current:
            self.say(f"Changes to “{self.current}” that were not applied are discarded.")
        self._show_vocab(name or None)

    def _show_vocab(self, name: str | None) -> None:
        """Fill the table and templates from the catalog's copy of vocabulary `name`."""
        self.current = name
        v = self.catalog.vocab(name) if name else None
        self._loading = True
        self.table.setRowCount(0)
        self._removed = []
        if v is not None:
            self.title.setText(f"“{v['name']}” — {v['labels']:,} labels")
            for lab in v["label_list"]:
                self._append_row(lab["name"], ", ".join(lab["synonyms"]), " | ".join(lab["prompts"]),
                                 lab["tagged"], original=lab["name"])  # fmt: skip
            self.templates.setPlainText("\n".join(v["templates"]))
            self.auto_box.setChecked(v.get("auto", True))
        else:
            self.templates.setPlainText("")
        self._loading = False
        self.dirty = False
        self.empty.setVisible(v is None)
        self.right.setVisible(v is not None)
        self._enable()

    def _append_row(
        self, name: str, syn: str, prompts: str, count: int | None, original: str | None
    ) -> int:
        r = self.table.rowCount()
        self.table.insertRow(r)
        it = QTableWidgetItem(name)
        it.setData(OrigRole, original)
        self.table.setItem(r, COL_NAME, it)
        self.table.setItem(r, COL_SYN, QTableWidgetItem(syn))
        self.table.setItem(r, COL_PROMPTS, QTableWidgetItem(prompts))
        c = QTableWidgetItem("" if count is None else f"{count:,}")
        c.setFlags(c.flags() & ~Qt.ItemFlag.ItemIsEditable)
        c.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.table.setItem(r, COL_COUNT, c)
        return r

    def _on_edited(self, _item) -> None:
        if not self._loading:
            self.dirty = True
            self._enable()

    def _on_templates_edited(self) -> None:
        if not self._loading:
            self.dirty = True
            self._enable()

    def _enable(self) -> None:
        have = self.current is not None
        idle = not self.busy
        for b in (self.export_btn, self.rename_btn, self.delete_btn, self.add_label_btn,
                  self.remove_label_btn):  # fmt: skip
            b.setEnabled(have and idle)
        for b in (self.new_btn, self.import_btn):
            b.setEnabled(idle)
        self.starter_btn.setEnabled(bool(self.catalog.starters) and idle)
        self.apply_btn.setEnabled(have and idle and self.dirty)
        self.revert_btn.setEnabled(have and idle and self.dirty)

    # -- messages and engine calls ---------------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        self.msg.setText(text)
        dark = self.palette().window().color().lightness() < 128
        self.msg.setStyleSheet(f"color: {'#ff8a80' if dark else '#b3261e'};" if error else "")
        self.msg.setVisible(bool(text))
        self.message.emit(text)

    def _call(self, method: str, params: dict, done, busy_text: str = "") -> None:
        """One engine call with the dialog marked busy until it answers."""
        self.busy = True
        self.bar.setVisible(bool(busy_text))
        if busy_text:
            self.say(busy_text)
        self._enable()
        self.busyChanged.emit(True)

        def finish():
            self.busy = False
            self._request = None
            self.bar.hide()
            self.bar.setRange(0, 0)
            self._enable()
            self.busyChanged.emit(False)

        def ok(r):
            finish()
            self.say("")
            done(r)

        def failed(e):
            finish()
            self.say(e.message, error=True)

        self._busy_text = busy_text
        fut = self.bridge.call(method, params, on_result=ok, on_error=failed, context=self)
        self._request = getattr(fut, "request_id", None)

    def _on_event(self, ev: dict) -> None:
        """A long re-tag reports how many photos it has done: the busy bar shows how far it is."""
        if (
            ev.get("event") != "progress"
            or self._request is None
            or ev.get("request") != self._request
        ):
            return
        d = ev.get("data") or {}
        total, done = int(d.get("total") or 0), int(d.get("done") or 0)
        if total <= 0:
            return
        self.bar.setVisible(True)
        self.bar.setRange(0, total)
        self.bar.setValue(min(done, total))
        if self._busy_text:
            self.say(f"{self._busy_text} {100 * done // total}%")

    def _changed(self, r: dict, note: str = "") -> None:
        """After create / update / import: the vocabulary as stored, and what re-tagging did."""
        info, t = r["vocab"], r.get("tagged") or {}
        self.dirty = False
        self.current = info["name"]
        self.catalog.set_vocab(info)
        self.catalog.refresh()  # a rename leaves the old name behind in the catalog's copy
        tagged = (
            f"Tagged {t.get('photos', 0):,} photos: {t.get('assigned', 0):,} automatic tags in force."
            if t
            else ""
        )
        self.say(" ".join(x for x in (note, tagged) if x))

    # -- vocabularies ----------------------------------------------------------------------------

    def new_vocab(self, name: str | None = None, starter: str | None = None) -> None:
        """Create a vocabulary: empty, or a copy of a starter vocabulary."""
        if name is None:
            name, ok = QInputDialog.getText(self, "New vocabulary", "Name:", text=starter or "")
            if not ok:
                return
        name = name.strip()
        if not name:
            self.say("A vocabulary needs a name.", error=True)
            return
        if self.catalog.vocab(name) is not None:
            self.say(f"There is already a vocabulary named “{name}”.", error=True)
            return
        params: dict = {"name": name}
        if starter:
            params["starter"] = starter
        self._call("vocab_create", params, lambda r: self._changed(r, f"Created “{name}”."),
                   f"Creating “{name}” and tagging your photos…")  # fmt: skip

    def rename_vocab(self, new: str | None = None) -> None:
        if self.current is None:
            return
        if new is None:
            new, ok = QInputDialog.getText(
                self, "Rename vocabulary", "New name:", text=self.current
            )
            if not ok:
                return
        new = new.strip()
        if not new:
            self.say("A vocabulary needs a name.", error=True)
            return
        if new == self.current:
            return
        old = self.current
        self._call("vocab_update", {"name": old, "rename": new},
                   lambda r: self._changed(r, f"Renamed “{old}” to “{new}”."))  # fmt: skip

    def delete_vocab(self, confirm: bool = True) -> None:
        if self.current is None:
            return
        name = self.current
        v = self.catalog.vocab(name) or {}
        if confirm:
            answer = QMessageBox.question(
                self, "Delete vocabulary",
                f"Delete “{name}” with its {v.get('labels', 0):,} labels? Your confirmations and "
                "rejections of its tags are deleted too. Photos are not touched.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                return

        def done(_r):
            self.current = None
            self.dirty = False
            self.say(f"Deleted “{name}”.")
            self.catalog.refresh()

        self._call("vocab_delete", {"name": name}, done)

    def import_file(self, path: str | None = None) -> None:
        """Read a vocabulary file (the engine checks it and names the line at fault)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import a vocabulary", "", FILE_FILTER)
            if not path:
                return
        self._call("vocab_import", {"path": path},
                   lambda r: self._changed(r, f"Imported “{r['vocab']['name']}” from {os.path.basename(path)}."),
                   f"Importing {os.path.basename(path)} and tagging your photos…")  # fmt: skip

    def export_file(self, path: str | None = None) -> None:
        if self.current is None:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export a vocabulary", f"{self.current}.json", FILE_FILTER
            )
            if not path:
                return
        self._call("vocab_export", {"name": self.current, "path": path},
                   lambda r: self.say(f"Saved {r['labels']:,} labels to {r['path']}."))  # fmt: skip

    # -- labels ----------------------------------------------------------------------------------

    def add_label(self, name: str = "") -> int:
        """A new row (edited at once when no name is given); Apply sends it."""
        r = self._append_row(name, "", "", None, original=None)
        self.dirty = True
        self._enable()
        self.table.setCurrentCell(r, COL_NAME)
        if not name:
            self.table.editItem(self.table.item(r, COL_NAME))
        return r

    def remove_selected_labels(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()} or
                      ({self.table.currentRow()} if self.table.currentRow() >= 0 else set()), reverse=True)  # fmt: skip
        for r in rows:
            orig = self.table.item(r, COL_NAME).data(OrigRole)
            if orig is not None:
                self._removed.append(orig)
            self.table.removeRow(r)
        if rows:
            self.dirty = True
            self._enable()

    def pending_update(self) -> dict:
        """The vocab_update params for the edits made (raises ValueError with a message for the user)."""
        v = self.catalog.vocab(self.current) or {"label_list": [], "templates": []}
        stored = {lab["name"]: lab for lab in v["label_list"]}
        seen: dict[str, int] = {}
        add, renames, edits = [], {}, []
        for r in range(self.table.rowCount()):
            name = " ".join(self.table.item(r, COL_NAME).text().split())
            if not name:
                raise ValueError(
                    f"Row {r + 1}: a label needs a name (remove the row if it is not wanted)."
                )
            k = label_key(name)
            if k in seen:
                raise ValueError(f"Row {r + 1}: “{name}” is already in the list (row {seen[k] + 1}); "
                                 "labels must differ by more than letter case.")  # fmt: skip
            seen[k] = r
            syn = split_list(self.table.item(r, COL_SYN).text(), ",")
            prompts = split_list(self.table.item(r, COL_PROMPTS).text(), "|")
            orig = self.table.item(r, COL_NAME).data(OrigRole)
            if orig is None:
                spec: dict = {"name": name}
                if syn:
                    spec["synonyms"] = syn
                if prompts:
                    spec["prompts"] = prompts
                add.append(spec if len(spec) > 1 else name)
                continue
            if name != orig:
                renames[orig] = name
            old = stored.get(orig, {})
            if syn != old.get("synonyms", []) or prompts != old.get("prompts", []):
                spec = {"name": orig, "synonyms": syn, "prompts": prompts}
                if old.get("threshold_source") == "user":  # an edit replaces the threshold too
                    spec["threshold"] = old["threshold"]
                edits.append(spec)
        params: dict = {"name": self.current}
        if add:
            params["add"] = add
        if self._removed:
            params["remove"] = list(self._removed)
        if renames:
            params["rename_labels"] = renames
        if edits:
            params["edit"] = edits
        templates = [t.strip() for t in self.templates.toPlainText().splitlines() if t.strip()]
        if templates != list(v["templates"]):
            if not templates:
                raise ValueError('Give at least one prompt template, e.g. "a photo of a {}."')
            params["templates"] = templates
        if self.auto_box.isChecked() != v.get("auto", True):
            params["auto"] = self.auto_box.isChecked()
        return params

    def apply(self) -> None:
        """Send the edits as one vocab_update (refusing empty or duplicate labels first)."""
        if self.current is None:
            return
        try:
            params = self.pending_update()
        except ValueError as e:
            self.say(str(e), error=True)
            return
        if len(params) == 1:
            self.dirty = False
            self._enable()
            self.say("Nothing to apply.")
            return
        name = self.current
        self._call("vocab_update", params, lambda r: self._changed(r, f"Saved “{name}”."),
                   f"Saving “{name}” and tagging your photos…")  # fmt: skip
