"""The library panel: watched folders, indexing progress, pause/resume, and failures.

It holds no state of its own beyond what it shows: the window feeds it ``status``
results and job events, and it asks the engine to add, remove, pause and resume.
"""

from __future__ import annotations

import os
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)


def fmt_eta(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def progress_text(p: dict) -> str:
    """'120 / 1,000 photos · 35.2 per second · about 25 s left' (and paused / failed notes);
    a download's bytes read '10.5 / 12.1 MB · 4.2 MB/s · about 1 s left'."""
    unit = "photos" if p.get("unit", "files") == "files" else "bytes"
    if unit == "photos":
        parts = [f"{p['done']:,} / {p['total']:,} photos"]
    else:
        total = f" / {p['total'] / 1e6:,.1f}" if p.get("total") else ""
        parts = [f"{p['done'] / 1e6:,.1f}{total} MB"]
    if p.get("paused"):
        parts.append("paused")
    else:
        rate = p.get("rate") or 0.0
        if rate > 0:
            parts.append(f"{rate:.1f} per second" if unit == "photos" else f"{rate / 1e6:.1f} MB/s")
        if p.get("eta_s") is not None and p["done"] < p["total"]:
            parts.append(f"about {fmt_eta(p['eta_s'])} left")
    if p.get("failed"):
        parts.append(f"{p['failed']} could not be read")
    return " · ".join(parts)


class LibraryPanel(QWidget):
    """Folders + indexing status. Signals carry what the user asked for."""

    foldersChanged = Signal(list)  # the folder paths now in the library
    edited = Signal()  # a folder was added or removed here: the window refreshes status + results

    def __init__(self, bridge, settings, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.settings = settings
        self.folders: list[dict] = []
        self.paused = False
        self.jobs: dict[str, dict] = {}  # running indexing jobs: id -> last progress
        self.last_progress_at = 0.0
        self.setMinimumWidth(220)

        box = QGroupBox("Folders")
        self.folder_list = QListWidget()
        self.folder_list.setAccessibleName("Watched folders")
        self.folder_list.setAlternatingRowColors(False)
        self.add_btn = QPushButton("Add folder…")
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setEnabled(False)
        self.remove_btn.setToolTip(
            "Stop watching this folder and forget its photos (the files stay)"
        )
        self.add_btn.clicked.connect(self.choose_folder)
        self.remove_btn.clicked.connect(self.remove_selected)
        self.folder_list.itemSelectionChanged.connect(
            lambda: self.remove_btn.setEnabled(
                bool(self.folder_list.selectedItems()) and self.bridge.is_ready
            )
        )
        row = QHBoxLayout()
        row.addWidget(self.add_btn)
        row.addWidget(self.remove_btn)
        fl = QVBoxLayout(box)
        fl.addWidget(self.folder_list, 1)
        fl.addLayout(row)

        ibox = QGroupBox("Indexing")
        self.state_label = QLabel("Idle", wordWrap=True, objectName="indexState")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(8)
        self.bar.hide()
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setCheckable(False)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.pause_btn.setEnabled(False)
        il = QVBoxLayout(ibox)
        il.addWidget(self.state_label)
        il.addWidget(self.bar)
        il.addWidget(self.pause_btn)

        self.fail_box = QGroupBox("Could not index")
        self.fail_tree = QTreeWidget()
        self.fail_tree.setHeaderLabels(["File", "Reason"])
        self.fail_tree.setRootIsDecorated(False)
        self.fail_tree.setAccessibleName("Files that could not be indexed")
        self.fail_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.fail_tree.header().setStretchLastSection(True)
        QVBoxLayout(self.fail_box).addWidget(self.fail_tree)
        self.fail_box.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 4, 8)
        lay.addWidget(box, 2)
        lay.addWidget(ibox)
        lay.addWidget(self.fail_box, 1)
        self.set_enabled(False)

    # -- engine state ----------------------------------------------------------------------

    def set_enabled(self, ready: bool) -> None:
        self.add_btn.setEnabled(ready)
        self.pause_btn.setEnabled(ready)
        self.remove_btn.setEnabled(ready and bool(self.folder_list.selectedItems()))

    def show_status(self, st: dict) -> None:
        """A ``status`` result: folders, counts, pause state and running jobs."""
        self.folders = st.get("folders", [])
        selected = {i.data(Qt.ItemDataRole.UserRole) for i in self.folder_list.selectedItems()}
        self.folder_list.clear()
        for f in self.folders:
            name = os.path.basename(f["path"].rstrip("/\\")) or f["path"]
            note = "" if f["online"] else " — offline"
            it = QListWidgetItem(f"{name}  ({f['files']:,}){note}")
            it.setToolTip(
                f"{f['path']}\n{f['files']:,} files, {f['failures']} could not be indexed"
                + ("" if f["online"] else "\nThe folder cannot be reached (unplugged drive?)")
            )
            it.setData(Qt.ItemDataRole.UserRole, f["path"])
            self.folder_list.addItem(it)
            if f["path"] in selected:
                it.setSelected(True)
        self._set_paused(bool(st.get("paused")))
        self.jobs = {
            j["job"]: j.get("progress") or {}
            for j in st.get("jobs", [])
            if j["kind"] in ("scan", "watch")  # downloads and trainings show in their dialogs
        }
        if not self.jobs:
            self._idle(st)
        if st.get("failures"):
            self.refresh_failures()
        else:
            self.fail_box.hide()
        self.foldersChanged.emit([f["path"] for f in self.folders])

    def _idle(self, st: dict | None = None) -> None:
        self.bar.hide()
        if st is not None:
            n = st.get("files", 0)
            self.state_label.setText(f"{n:,} photos indexed." if n else "No photos yet.")

    def on_event(self, ev: dict) -> None:
        name, job, data = ev["event"], ev.get("job"), ev.get("data")
        if name == "pause_state":
            self._set_paused(bool(data.get("paused")))
        elif name == "job_started" and data.get("kind") in ("scan", "watch"):
            self.jobs[job] = {}
            self.bar.show()
            self.bar.setRange(0, 0)  # busy until the first progress says how much
            self.state_label.setText("Looking for photos…")
        elif name == "progress" and (job in self.jobs or data.get("unit") == "files"):
            self.jobs[job] = data
            self.last_progress_at = time.monotonic()
            self.bar.show()
            self.bar.setRange(0, max(1, data["total"]))
            self.bar.setValue(data["done"])
            self.state_label.setText(
                ("Paused: " if self.paused else "Indexing: ") + progress_text(data)
            )
        elif name in ("job_done", "job_failed") and job in self.jobs:
            self.jobs.pop(job, None)
            if not self.jobs:
                self.bar.hide()
                if name == "job_failed":
                    self.state_label.setText(f"Indexing failed: {data.get('message')}")
                else:
                    self.state_label.setText(self._done_text(data))

    @staticmethod
    def _done_text(rep: dict) -> str:
        if rep.get("cancelled"):
            return "Indexing stopped."
        parts = []
        if rep.get("embedded"):
            parts.append(f"{rep['embedded']:,} new")
        if rep.get("reused"):
            parts.append(f"{rep['reused']:,} moved or copied")
        if rep.get("removed"):
            parts.append(f"{rep['removed']:,} removed")
        if rep.get("failed"):
            parts.append(f"{rep['failed']:,} could not be read")
        return "Up to date" + (f" ({', '.join(parts)})." if parts else ".")

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_btn.setText("Resume" if paused else "Pause")
        self.pause_btn.setToolTip(
            "Go on indexing" if paused else "Pause indexing (searching still works)"
        )
        if paused and self.jobs:
            self.state_label.setText("Paused.")

    # -- actions ---------------------------------------------------------------------------

    def toggle_pause(self) -> None:
        self.bridge.call("resume" if self.paused else "pause", on_result=lambda r: self._set_paused(r["paused"]),
                         on_error=self._error)  # fmt: skip

    def choose_folder(self) -> None:
        start = self.settings.last_dialog_dir or os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, "Add a folder of photos", start)
        if path:
            self.settings.last_dialog_dir = os.path.dirname(path)
            self.add_folder(path)

    def add_folder(self, path: str, on_done=None) -> None:
        def ok(r):
            if r["folder"] not in self.settings.last_folders:
                self.settings.last_folders.append(r["folder"])
            self.state_label.setText("Looking for photos…")
            self.bar.show()
            self.bar.setRange(0, 0)
            if r.get("job"):
                self.jobs.setdefault(r["job"], {})
            self.edited.emit()
            if on_done:
                on_done(r)

        self.bridge.call("add_folder", {"path": path}, on_result=ok, on_error=self._error)

    def remove_selected(self) -> None:
        items = self.folder_list.selectedItems()
        if not items:
            return
        path = items[0].data(Qt.ItemDataRole.UserRole)
        ans = QMessageBox.question(self, "Remove folder",
                                   f"Stop watching {path} and remove its photos from the library?\n"
                                   "The files themselves are not touched.")  # fmt: skip
        if ans == QMessageBox.StandardButton.Yes:
            self.remove_folder(path)

    def remove_folder(self, path: str, on_done=None) -> None:
        def ok(r):
            if path in self.settings.last_folders:
                self.settings.last_folders.remove(path)
            self.edited.emit()
            if on_done:
                on_done(r)

        self.bridge.call("remove_folder", {"path": path}, on_result=ok, on_error=self._error)

    def refresh_failures(self) -> None:
        self.bridge.call(
            "failures", {}, on_result=self._show_failures, on_error=lambda e: None, context=self
        )

    def _show_failures(self, r: dict) -> None:
        fails = r.get("failures", [])
        self.fail_tree.clear()
        for f in fails:
            it = QTreeWidgetItem([os.path.basename(f["path"]), f["reason"]])
            it.setToolTip(0, f["path"])
            it.setToolTip(1, f["reason"])
            self.fail_tree.addTopLevelItem(it)
        self.fail_box.setTitle(f"Could not index ({len(fails)})")
        self.fail_box.setVisible(bool(fails))

    def _error(self, e) -> None:
        self.state_label.setText(e.message)
