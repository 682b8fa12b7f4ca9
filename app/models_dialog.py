"""The model manager: which models exist, which are here, download, import, switch.

The engine's ``models_list`` says name, size, licence and whether a model is here. The
speed class and description are read from the registry's JSON files (resources/models,
data, not engine code) because the protocol's ModelInfo does not carry them yet.
Switching models makes the engine re-embed the library in the background; searches keep
answering from the old model's vectors until the new ones are all in (the engine's
``status.search_model`` says which model answers; the window shows it in its banner).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from .library_panel import progress_text

DEMO_MODEL = "photosift-demo"  # engine.library.DEMO_MODEL (not imported: it pulls numpy)
RECOMMENDED_TAG = " — Recommended"
REGISTRY_DIR = Path(__file__).resolve().parent.parent / "resources" / "models"


def registry_extras(folder: Path = REGISTRY_DIR) -> dict[str, dict]:
    """key -> {speed_class, description} from the registry JSON files (missing: empty)."""
    out: dict[str, dict] = {}
    try:
        files = sorted(folder.glob("*.json"))
    except OSError:
        return out
    for f in files:
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
            out[d["key"]] = {
                "speed_class": d.get("speed_class"),
                "description": d.get("description", ""),
            }
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return "—"
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


class ModelsDialog(QDialog):
    """Lists models; Download (with progress and Cancel), Use, Import folder."""

    modelChanged = Signal(object)  # the new active ModelInfo
    fineTuneRequested = Signal()  # the user asked for the fine-tuning dialog

    COLS = ("Model", "Size", "Speed", "Licence", "Status")

    def __init__(self, bridge, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(760, 380)
        self.bridge = bridge
        self.models: list[dict] = []
        self.extras = registry_extras()
        self.downloads: dict[str, str] = {}  # job id -> model key
        self.download_progress: dict[str, dict] = {}  # model key -> last progress
        self._over: set[str] = set()  # download jobs that have ended
        self._cancelling: set[str] = set()  # download jobs the engine agreed to cancel
        self.exact_size: dict[str, int] = {}  # model key -> bytes its download fetches (the hub's)
        self._download_next: str | None = None  # a model to download once the list is in

        self.table = QTableWidget(0, len(self.COLS))
        self.table.setHorizontalHeaderLabels(self.COLS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(self.COLS)):
            self.table.horizontalHeader().setSectionResizeMode(
                c, QHeaderView.ResizeMode.ResizeToContents
            )
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.setAccessibleName("Models")
        self.about = QLabel(wordWrap=True, objectName="modelAbout")
        self.about.setMinimumHeight(48)
        self.progress = QProgressBar()
        self.progress.hide()
        self.message = QLabel(wordWrap=True, objectName="modelMessage")

        self.download_btn = QPushButton("Download")
        self.cancel_btn = QPushButton("Cancel download")
        self.use_btn = QPushButton("Use this model")
        self.import_btn = QPushButton("Import folder…")
        self.import_btn.setToolTip(
            "A model folder from another machine: photosift's own (model.json, image.onnx, "
            "text.onnx, tokenizer.json), or a copy of an immich-app, transformers.js or rclip "
            "model repo as it comes from the hub"
        )
        self.download_btn.clicked.connect(self.download_selected)
        self.cancel_btn.clicked.connect(self.cancel_download)
        self.use_btn.clicked.connect(self.use_selected)
        self.import_btn.clicked.connect(self.choose_import)
        self.train_btn = QPushButton("Fine-tune…")
        self.train_btn.setToolTip("Teach the active model your own labels")
        self.train_btn.clicked.connect(self.fineTuneRequested)
        # NaFlex models only: how many patches a photo may use (more: finer detail, slower).
        self.patches = QComboBox()
        self.patches.setAccessibleName("Patches per photo")
        self.patches.setToolTip("NaFlex keeps each photo's shape. More patches per photo see finer "
                                "detail but index more slowly; changing it re-indexes the library "
                                "in the background.")  # fmt: skip
        self.patches.activated.connect(self.set_patches)
        self.patches_label = QLabel("Patches per photo:")
        self.patches_label.setBuddy(self.patches)
        row = QHBoxLayout()
        for b in (
            self.download_btn,
            self.cancel_btn,
            self.use_btn,
            self.patches_label,
            self.patches,
        ):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.train_btn)
        row.addWidget(self.import_btn)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.about)
        lay.addWidget(self.progress)
        lay.addWidget(self.message)
        lay.addLayout(row)
        lay.addWidget(close)
        bridge.event.connect(self.on_event)
        self.refresh()
        self._update_buttons()

    def refresh(self) -> None:
        self.bridge.call("models_list", {}, on_result=lambda r: self.show_models(r["models"]),
                         on_error=self._error, context=self)  # fmt: skip

    def show_models(self, models: list[dict]) -> None:
        key = self.selected_key()
        if key is None and not self.models:  # first look: offer the model to start with
            offer = [m["key"] for m in models if m.get("recommended") and not m.get("here")]
            key = offer[0] if offer else None
        models = sorted(models, key=lambda m: not m.get("recommended"))  # it comes first
        self.models = models
        self.table.setRowCount(len(models))
        for r, m in enumerate(models):
            ex = self.extras.get(m["key"], {})
            status = "active" if m.get("active") else "here" if m.get("here") else "not downloaded"
            if m["key"] in self.download_progress:
                status = "downloading…"
            name = m.get("name") or m["key"]
            if m.get("recommended"):
                name += RECOMMENDED_TAG
            cells = (name, fmt_mb(m.get("size_mb")), ex.get("speed_class") or "—",
                     m.get("license") or "—", status)  # fmt: skip
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setData(Qt.ItemDataRole.UserRole, m["key"])
                if c == 0:
                    it.setToolTip(m["key"])
                if m.get("active"):
                    f = it.font()
                    f.setBold(True)
                    it.setFont(f)
                self.table.setItem(r, c, it)
            if m["key"] == key:
                self.table.selectRow(r)
        self._update_buttons()
        if self._download_next is not None:
            key, self._download_next = self._download_next, None
            m = next((x for x in models if x["key"] == key), None)
            if m is not None and not m.get("here") and key not in self.download_progress:
                self.table.selectRow(models.index(m))
                self.download_selected()

    def download_when_listed(self, key: str) -> None:
        """Start downloading ``key`` as soon as the model list is in (the banner's offer)."""
        self._download_next = key
        if self.models:
            self.show_models(self.models)

    def selected_key(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def selected(self) -> dict | None:
        key = self.selected_key()
        return next((m for m in self.models if m["key"] == key), None)

    def _update_buttons(self) -> None:
        m = self.selected()
        ready = self.bridge.is_ready
        downloading = m is not None and m["key"] in self.download_progress
        self.download_btn.setEnabled(
            ready and m is not None and not m.get("here") and not downloading
        )
        offer = m is not None and not m.get("here")
        if offer and m["key"] not in self.exact_size and ready:
            self._ask_size(m["key"])
        size = self.download_mb(m)  # say how much before the user commits to it
        self.download_btn.setText(f"Download ({fmt_mb(size)})" if offer and size else "Download")
        self.cancel_btn.setVisible(downloading)
        self.use_btn.setEnabled(
            ready and m is not None and bool(m.get("here")) and not m.get("active")
        )
        self.import_btn.setEnabled(ready)
        choices = (m or {}).get("max_patches_choices") or []
        self.patches_label.setVisible(bool(choices))
        self.patches.setVisible(bool(choices))
        if choices:
            self.patches.blockSignals(True)
            self.patches.clear()
            for n in sorted({*choices, m.get("max_patches") or choices[0]}):
                self.patches.addItem(f"{n:,}", n)
            self.patches.setCurrentIndex(self.patches.findData(m.get("max_patches")))
            self.patches.setEnabled(ready)
            self.patches.blockSignals(False)
        if m is None:
            self.about.setText("Choose a model to see what it is.")
            return
        desc = self.extras.get(m["key"], {}).get("description") or ""
        if m["key"] == DEMO_MODEL:
            desc = ("The built-in demo model. It was trained on coloured shapes, not photos: it can "
                    "find “a red circle” but not “a dog on a beach”. Download or import a real model "
                    "for real photos.")  # fmt: skip
        if m.get("recommended"):
            size = "" if m.get("here") else f" ({fmt_mb(self.download_mb(m))} download)"
            desc = f"<b>Recommended</b>: the model to start with for real photos{size}. {desc}"
        self.about.setText(desc)

    def download_mb(self, m: dict | None) -> float | None:
        """What downloading ``m`` costs in MB: the hub's figure for the files it needs once the
        engine has asked, the registry's estimate until then."""
        if m is None:
            return None
        exact = self.exact_size.get(m["key"])
        return exact / 1e6 if exact else m.get("size_mb")

    def _ask_size(self, key: str) -> None:
        self.exact_size[key] = 0  # asked (0: no answer yet, or none to be had offline)

        def got(r, key=key):
            if r.get("exact") and r.get("bytes"):
                self.exact_size[key] = int(r["bytes"])
                self._update_buttons()

        self.bridge.call("download_size", {"key": key}, on_result=got, on_error=lambda e: None,
                         context=self)  # fmt: skip

    # -- actions ---------------------------------------------------------------------------

    def download_selected(self) -> None:
        m = self.selected()
        if m is None:
            return
        key = m["key"]
        # While the built-in demo model is in use, the first real model is put to work at once:
        # downloaded, switched to, and the library indexed with it, with no other step.
        active = next((x for x in self.models if x.get("active")), None)
        use = active is None or active["key"] == DEMO_MODEL
        self.bridge.call("download_model", {"key": key, "use": use},
                         on_result=lambda r: self._begin(r["job"], key),
                         on_error=self._error, context=self)  # fmt: skip

    def _begin(self, job: str, key: str) -> None:
        """A download job started (its reply or its job_started event, whichever came first)."""
        if job in self.downloads or job in self._over:
            return
        self.downloads[job] = key
        self.download_progress.setdefault(key, {})
        self.progress.setRange(0, 0)  # busy until the first progress says how much
        self.progress.show()
        self.message.setText(f"Downloading {key}…")
        self.show_models(self.models)

    def cancel_download(self) -> None:
        key = self.selected_key()

        for job, k in list(self.downloads.items()):
            if k == key:

                def asked(r, job=job):
                    if r.get("cancelled") and job in self.downloads:
                        self._cancelling.add(job)
                        self.message.setText(f"Cancelling the download of {key}…")

                self.bridge.call(
                    "cancel", {"job": job}, on_result=asked, on_error=self._error, context=self
                )

    def use_selected(self) -> None:
        m = self.selected()
        if m is None:
            return
        self.message.setText(f"Switching to {m.get('name') or m['key']}… the library is re-indexed in the "
                             "background; searching keeps working meanwhile.")  # fmt: skip

        def done(r):
            self.modelChanged.emit(r["model"])
            self.refresh()

        self.bridge.call(
            "use_model", {"key": m["key"]}, on_result=done, on_error=self._error, context=self
        )

    def set_patches(self, _index: int = 0) -> None:
        """Save the selected NaFlex model's patch budget (the engine re-embeds if it is active)."""
        m = self.selected()
        n = self.patches.currentData()
        if m is None or n is None or n == m.get("max_patches"):
            return
        self.message.setText(f"{m.get('name') or m['key']}: up to {n:,} patches per photo"
                             + ("; re-indexing in the background, searching keeps working." if m.get("active") else "."))  # fmt: skip

        def done(r):
            if m.get("active"):
                self.modelChanged.emit(r["model"])
            self.refresh()

        self.bridge.call("set_max_patches", {"key": m["key"], "max_patches": n}, on_result=done,
                         on_error=self._error, context=self)  # fmt: skip

    def choose_import(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Import a model folder", os.path.expanduser("~")
        )
        if folder:
            self.import_folder(folder)

    def import_folder(self, folder: str) -> None:
        def done(r):
            self.message.setText(f"Imported {r['model'].get('name') or r['model']['key']}.")
            self.refresh()

        self.bridge.call(
            "import_model", {"folder": folder}, on_result=done, on_error=self._error, context=self
        )

    def on_event(self, ev: dict) -> None:
        job = ev.get("job")
        data = ev.get("data") or {}
        if ev["event"] == "job_started" and data.get("kind") == "download" and data.get("model"):
            self._begin(job, data["model"])  # it can overtake the reply that names the job
        if job not in self.downloads:
            return
        key = self.downloads[job]
        name = ev["event"]
        if name == "progress":
            self.download_progress[key] = data
            if data.get("total"):
                self.progress.setRange(0, 1000)
                self.progress.setValue(int(1000 * data["done"] / data["total"]))
            else:  # a step with no byte count (making the int8 tower for this CPU): busy
                self.progress.setRange(0, 0)
            current = f" ({data['current']})" if data.get("current") else ""
            if (
                job not in self._cancelling
            ):  # a chunk already on its way must not undo "Cancelling…"
                self.message.setText(f"Downloading {key}{current}: {progress_text(data)}")
        elif name in ("job_done", "job_failed"):
            self._over.add(job)
            self._cancelling.discard(job)
            self.downloads.pop(job, None)
            self.download_progress.pop(key, None)
            self.progress.hide()
            if name == "job_failed":
                self.message.setText(f"Download of {key} failed: {data.get('message')}")
            elif data.get("cancelled"):
                self.message.setText(f"Download of {key} cancelled.")
            elif data.get("model"):  # switched to it: the library is being indexed with it
                self.message.setText(f"{key} is downloaded and in use; your photos are being "
                                     f"indexed with it in the background.")  # fmt: skip
                self.modelChanged.emit(data["model"])
            else:
                self.message.setText(
                    f"{key} is downloaded. Choose “Use this model” to switch to it."
                )
            self.refresh()

    def _error(self, e) -> None:
        self.message.setText(e.message)
