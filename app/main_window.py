"""The main window: search bar and filters, library panel, results grid, preview.

Every engine call is asynchronous (EngineBridge); the window reacts to replies and
events as they come and never waits. Search runs as you type, debounced, and a reply to
an older search is dropped when a newer one has been sent.
"""

from __future__ import annotations

import os
import time

from PySide6.QtCore import QByteArray, QDate, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.service.protocol import PHOTO_EXTENSIONS, RAW_EXTENSIONS

from . import desktop
from .engine_bridge import EngineBridge
from .grid import HitRole, ResultsModel, ResultsView
from .library_panel import LibraryPanel
from .models_dialog import DEMO_MODEL, ModelsDialog, fmt_mb
from .notices import Banner, EmptyState, chip
from .preview import PreviewPane
from .settings import AppSettings
from .tag_catalog import TagCatalog
from .tags_panel import TagsPanel
from .thumbs import ThumbnailCache
from .train_dialog import TrainDialog

DEBOUNCE_MS = 250
RESULTS_K = 1000  # the engine's maximum: the grid is virtualised, thousands are fine
REFRESH_MS = 400  # coalesce bursts of library events into one status + search refresh
IMAGE_EXTS = {"." + e for e in PHOTO_EXTENSIONS}  # what a drop may hold (the engine decodes it)
TYPE_FILTERS = (
    ("All types", []),
    ("JPEG", ["jpg", "jpeg"]),
    ("HEIC / HEIF", ["heic", "heif"]),
    ("PNG", ["png"]),
    ("WebP", ["webp"]),
    ("AVIF", ["avif"]),
    ("TIFF", ["tif", "tiff"]),
    ("Camera RAW (all)", sorted(RAW_EXTENSIONS)),
    ("DNG", ["dng"]),
    ("Canon RAW (CR3, CR2, CRW)", ["cr3", "cr2", "crw"]),
    ("Nikon RAW (NEF, NRW)", ["nef", "nrw"]),
    ("Sony RAW (ARW, SRF, SR2)", ["arw", "srf", "sr2"]),
    ("Fujifilm RAW (RAF)", ["raf"]),
    ("Olympus / OM RAW (ORF)", ["orf"]),
    ("Panasonic / Leica RAW (RW2, RWL)", ["rw2", "rwl"]),
    ("Pentax RAW (PEF)", ["pef"]),
)
NO_DATE = QDate(1800, 1, 1)  # the date edits' minimum, shown as "any"


class MainWindow(QMainWindow):
    """The photosift window. `bridge` is started by the caller (or by `start_engine`)."""

    searchSent = Signal(object)  # the params of each search sent (tests and the benchmark)
    resultsShown = Signal(int)  # number of results now in the grid
    statusShown = Signal(object)  # each status result

    def __init__(self, bridge: EngineBridge, settings: AppSettings, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.settings = settings
        self.example: str | None = None  # search by example: a photo path
        self.status: dict = {}
        self.model: dict | None = None
        self._seq = 0
        self._shown_seq = 0
        self._search_sent_at = 0.0
        self._pending_search = False
        self._models_dialog: ModelsDialog | None = None
        self._train_dialog: TrainDialog | None = None
        self.setWindowTitle("photosift")
        self.setAcceptDrops(True)
        self.resize(1280, 800)

        self.thumbs = ThumbnailCache(bridge, size=settings.thumb_size, parent=self)
        self.model_ = ResultsModel(self.thumbs, self)
        self.grid = ResultsView(self.model_, settings.thumb_size)
        self.catalog = TagCatalog(bridge, self)  # vocabularies and tag counts (app.tag_catalog)
        self.tag_filter: list[dict] = []  # TagRefs the results must carry (filters.tags)
        self._tag_preview = False  # the grid shows a threshold preview, not the search
        self.preview = PreviewPane(bridge, catalog=self.catalog)
        self.library = LibraryPanel(bridge, settings)
        self.tags = TagsPanel(bridge, self.catalog)
        self.side = QTabWidget()
        self.side.setDocumentMode(True)
        self.side.addTab(self.library, "Library")
        self.side.addTab(self.tags, "Tags")
        self.banner = Banner()
        self.empty = EmptyState()

        self._build_top()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.grid)
        center = QWidget()
        cl = QVBoxLayout(center)
        cl.setContentsMargins(4, 8, 4, 4)
        cl.addWidget(self.banner)
        cl.addWidget(self.stack, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.side)
        self.splitter.addWidget(center)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([250, 760, 300])
        self.splitter.setChildrenCollapsible(False)
        root = QWidget()
        rl = QVBoxLayout(root)
        rl.setContentsMargins(8, 8, 8, 0)
        rl.setSpacing(6)
        rl.addWidget(self.top)
        rl.addWidget(self.splitter, 1)
        self.setCentralWidget(root)
        self.status_msg = QLabel()
        self.engine_label = QLabel()
        self.statusBar().addWidget(self.status_msg, 1)
        self.statusBar().addPermanentWidget(self.engine_label)

        self._debounce = QTimer(
            self, singleShot=True, interval=DEBOUNCE_MS, timeout=self.run_search
        )
        self._refresh = QTimer(
            self, singleShot=True, interval=REFRESH_MS, timeout=self._refresh_now
        )
        self._wire()
        from .about import install_about  # Help > About photosift

        install_about(self)
        self._restore()
        self._on_state(bridge.state)
        self._update_empty()

    # -- building ----------------------------------------------------------------------------

    def _build_top(self) -> None:
        self.top = QWidget()
        self.search = QLineEdit(objectName="search")
        self.search.setPlaceholderText(
            "Search your photos — e.g. “a red circle”, or “beach -people” to leave things out"
        )
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search")
        self.search.installEventFilter(self)

        self.chip, self.chip_label = chip("Stop searching by example", self.clear_example)
        self.tag_chip, self.tag_chip_label = chip("Stop filtering by tag", self.clear_tag_filter)

        self.folder_filter = QComboBox()
        self.folder_filter.setAccessibleName("Folder filter")
        self.folder_filter.addItem("All folders", "")
        self.folder_filter.setMinimumContentsLength(12)
        self.folder_filter.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.type_filter = QComboBox()
        self.type_filter.setAccessibleName("File type filter")
        for label, exts in TYPE_FILTERS:
            self.type_filter.addItem(label, exts)
        self.date_from = self._date_edit("From")
        self.date_to = self._date_edit("To")
        self.models_btn = QPushButton("Models…")
        self.models_btn.setToolTip("Choose, download or import a search model")
        self.models_btn.clicked.connect(self.open_models)
        self.train_btn = QPushButton("Fine-tune…")
        self.train_btn.setToolTip("Teach the model your own labels (nothing is re-indexed)")
        self.train_btn.clicked.connect(self.open_training)

        row1 = QHBoxLayout()
        row1.setContentsMargins(0, 0, 0, 0)
        row1.addWidget(self.search, 1)
        row1.addWidget(self.chip)
        row1.addWidget(self.tag_chip)
        row1.addWidget(self.models_btn)
        row1.addWidget(self.train_btn)
        row2 = QHBoxLayout()
        row2.setContentsMargins(2, 0, 0, 0)
        for w in (QLabel("Folder", objectName="hint"), self.folder_filter, QLabel("Type", objectName="hint"),
                  self.type_filter, QLabel("Taken from", objectName="hint"), self.date_from,
                  QLabel("to", objectName="hint"), self.date_to):  # fmt: skip
            row2.addWidget(w)
        row2.addStretch(1)
        lay = QVBoxLayout(self.top)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row1)
        lay.addLayout(row2)

    def _date_edit(self, name: str) -> QDateEdit:
        d = QDateEdit(calendarPopup=True)
        d.setDisplayFormat("yyyy-MM-dd")
        d.setMinimumDate(NO_DATE)
        d.setSpecialValueText("any")  # shown at the minimum date: no limit
        d.setDate(NO_DATE)
        d.setAccessibleName(f"Date taken {name.lower()}")
        return d

    def _wire(self) -> None:
        b = self.bridge
        b.ready.connect(self._on_ready)
        b.failed.connect(self._on_failed)
        b.died.connect(self._on_died)
        b.event.connect(self._on_event)
        b.stateChanged.connect(self._on_state)
        self.search.textChanged.connect(self._on_text)
        self.grid.typed.connect(self._type_into_search)
        self.grid.escapePressed.connect(self.clear_search)
        self.grid.openRequested.connect(self.open_photo)
        self.grid.selectionModel().currentChanged.connect(self._on_current)
        self.model_.modelReset.connect(lambda: self.preview.show_hit(None))
        self.preview.openRequested.connect(self.open_photo)
        self.preview.revealRequested.connect(self.reveal_photo)
        self.preview.similarRequested.connect(self.search_like)
        self.library.foldersChanged.connect(self._on_folders)
        self.library.edited.connect(self._refresh.start)
        self.tags.tagActivated.connect(lambda v, lab: self.set_tag_filter(v, lab))
        self.tags.clearRequested.connect(self.clear_tag_filter)
        self.tags.threshold.previewed.connect(self._show_tag_preview)
        self.tags.threshold.saved.connect(lambda *_: self._on_tags_changed())
        self.catalog.changed.connect(self._check_tag_filter)
        if self.preview.tags_view is not None:
            # An answer updates the counts but leaves the grid as it is: the photo stays in view
            # (to undo, or to go on to the next one) even when it no longer carries the tag.
            self.preview.tags_view.answered.connect(lambda *_: self.catalog.refresh())
        for combo in (self.folder_filter, self.type_filter):
            combo.currentIndexChanged.connect(lambda *_: self.run_search())
        for d in (self.date_from, self.date_to):
            d.dateChanged.connect(lambda *_: self._debounce.start())
        for keys, slot in (
            (QKeySequence.StandardKey.Find, self.focus_search),
            ("Ctrl+L", self.focus_search),
            ("Ctrl+O", self.library.choose_folder),
            ("Ctrl+T", self.show_tags),
            (
                "Ctrl+Shift+O",
                lambda: self.grid.current_path() and self.reveal_photo(self.grid.current_path()),
            ),
            (
                "Ctrl+M",
                lambda: self.grid.current_path() and self.search_like(self.grid.current_path()),
            ),
        ):
            QShortcut(QKeySequence(keys), self, activated=slot)
        quit_action = QAction(
            "Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close
        )
        self.addAction(quit_action)

    # -- engine lifecycle --------------------------------------------------------------------------

    def start_engine(self) -> None:
        self.bridge.start()

    def _on_state(self, state: str) -> None:
        text = {"starting": "Engine: starting…", "ready": "Engine: ready", "restarting": "Engine: restarting…",
                "failed": "Engine: stopped", "stopped": "Engine: stopped"}.get(state, state)  # fmt: skip
        self.engine_label.setText(text)
        ready = state == "ready"
        self.library.set_enabled(ready)
        self.tags.set_enabled(ready)
        if not ready:
            self._update_empty()

    def _on_ready(self, hello: dict) -> None:
        restarted = self.banner.kind == "died"
        self.model = hello.get("model")
        if hello.get("library_error"):
            self.banner.show_message(
                "library", f"<b>The library cannot be opened.</b> {hello['library_error']}", "error"
            )
        elif restarted:
            self.banner.show_message("restarted", "The engine stopped and was restarted. Your indexed photos are "
                                     "safe; interrupted indexing goes on where it left off.")  # fmt: skip
            QTimer.singleShot(8000, self.banner, lambda: self.banner.dismiss("restarted"))
        elif hello.get("model_error"):
            self.banner.show_message("model", f"<b>The search model cannot be used:</b> {hello['model_error']}",
                                     "error", "Models…", self.open_models)  # fmt: skip
        elif self.model and self.model.get("key") == DEMO_MODEL:
            self.banner.show_message(
                "demo", "<b>Demo model.</b> photosift is using its small built-in model, which knows coloured "
                "shapes (“a red circle”, “two blue squares”), not real photos. Add a real model to search "
                "real photos.", "info", "Models…", self.open_models)  # fmt: skip
            self.bridge.call("models_list", {}, on_result=self._offer_recommended, context=self)
        self.thumbs.resume()
        self.refresh_status()
        self.catalog.refresh()
        if self._pending_search or self.search.text().strip() or self.example or self.tag_filter:
            self.run_search()

    def _on_failed(self, msg: str) -> None:
        self.banner.show_message("failed", f"<b>The search engine could not start.</b> {_html(msg.splitlines()[0] if msg else '')}",
                                 "error", "Try again", self.bridge.restart)  # fmt: skip
        self._update_empty()

    def _on_died(self, msg: str) -> None:
        self.banner.show_message("died", f"<b>The search engine stopped unexpectedly</b> ({_html(msg)}). "
                                 "Restarting it… your indexed photos are safe.", "error",
                                 "Restart now", self.bridge.restart)  # fmt: skip

    def _on_event(self, ev: dict) -> None:
        self.library.on_event(ev)
        name = ev["event"]
        if name in ("job_done", "library_changed", "folder_state"):
            data = ev.get("data") or {}
            if name != "job_done" or data.get("kind") in ("scan", "watch"):
                self.thumbs.clear_failures()
                self._refresh.start()

    def _refresh_now(self) -> None:
        """After the library changed: new counts, and the results again (new, moved, gone photos)."""
        self.refresh_status()
        self.catalog.refresh()  # new photos were tagged as they were indexed
        if self.search.text().strip() or self.example or self.tag_filter:
            self.run_search(keep_view=True)

    def refresh_status(self) -> None:
        self.bridge.call(
            "status", {}, on_result=self._on_status, on_error=lambda e: None, context=self
        )

    def _on_status(self, st: dict) -> None:
        self.status = st
        self.library.show_status(st)
        if isinstance(st.get("model"), dict) and st["model"].get("key"):
            self.model = {**(self.model or {}), **st["model"]}
        self._show_switch_state(st)
        self._update_empty()
        self.statusShown.emit(st)

    def _show_switch_state(self, st: dict) -> None:
        """While a model switch re-embeds the library, say which model answers searches."""
        active = (st.get("model") or {}).get("key")
        answering = st.get("search_model")
        if active and answering and answering != active:
            name = _html((st.get("model") or {}).get("name") or active)
            self.banner.show_message("switching", f"Re-indexing your photos for <b>{name}</b>. "
                                     f"Until it finishes, searches use the previous model "
                                     f"(<i>{_html(answering)}</i>) and find every photo.")  # fmt: skip
        elif self.banner.kind == "switching" and self.banner.isVisible():
            name = _html((st.get("model") or {}).get("name") or active or "")
            self.banner.show_message(
                "switched", f"Re-indexing done: searches now use <b>{name}</b>."
            )
            QTimer.singleShot(8000, self.banner, lambda: self.banner.dismiss("switched"))

    def _on_folders(self, paths: list[str]) -> None:
        current = self.folder_filter.currentData() or self.settings.folder_filter
        self.folder_filter.blockSignals(True)
        self.folder_filter.clear()
        self.folder_filter.addItem("All folders", "")
        for p in paths:
            self.folder_filter.addItem(os.path.basename(p.rstrip("/\\")) or p, p)
            self.folder_filter.setItemData(
                self.folder_filter.count() - 1, p, Qt.ItemDataRole.ToolTipRole
            )
        i = self.folder_filter.findData(current)
        self.folder_filter.setCurrentIndex(max(0, i))
        self.folder_filter.blockSignals(False)

    # -- searching ---------------------------------------------------------------------------

    def _on_text(self, _text: str) -> None:
        self._debounce.start()  # restarts: one search once the typing pauses

    def filters(self) -> dict:
        f: dict = {}
        folder = self.folder_filter.currentData()
        if folder:
            f["folders"] = [folder]
        exts = self.type_filter.currentData()
        if exts:
            f["exts"] = list(exts)
        if self.date_from.date() != NO_DATE:
            f["date_from"] = self.date_from.date().toString("yyyy-MM-dd")
        if self.date_to.date() != NO_DATE:
            f["date_to"] = self.date_to.date().toString("yyyy-MM-dd")
        if self.tag_filter:
            f["tags"] = [dict(t) for t in self.tag_filter]
        return f

    def run_search(self, keep_view: bool = False) -> None:
        """Send the search now (the debounce timer ends here too)."""
        self._debounce.stop()
        self._tag_preview = False
        text = self.search.text().strip()
        # Nothing typed but a tag chosen: the engine browses the tag (its photos by tag score).
        if not text and not self.example and not self.tag_filter:
            self._seq += 1  # an answer still on its way is stale now
            self.model_.set_hits([])
            self._update_empty()
            return
        if not self.bridge.is_ready:
            self._pending_search = True
            self._update_empty()
            return
        self._pending_search = False
        self._seq += 1
        seq = self._seq
        params: dict = {"text": text, "k": RESULTS_K}
        if self.example:
            params["like"] = [self.example]
        f = self.filters()
        if f:
            params["filters"] = f
        self._search_sent_at = time.monotonic()
        self.searchSent.emit(params)
        self.bridge.call("search", params, on_result=lambda r: self._on_results(seq, r, keep_view),
                         on_error=lambda e: self._on_search_error(seq, e))  # fmt: skip

    def _on_results(self, seq: int, r: dict, keep_view: bool) -> None:
        if seq != self._seq:
            return  # a newer search is on its way
        current = self.grid.current_path() if keep_view else None
        scroll = self.grid.verticalScrollBar().value() if keep_view else 0
        self.model_.set_hits(r["hits"])
        if current is not None:
            row = self.model_.row_of(current)
            if row is not None:
                self.grid.setCurrentIndex(self.model_.index(row))
        self.grid.verticalScrollBar().setValue(scroll)
        ms = (time.monotonic() - self._search_sent_at) * 1000
        n = len(self.model_.hits)
        tagged = f" tagged {self._tag_names()}" if self.tag_filter else ""
        self.status_msg.setText(f"{n:,} result{'s' if n != 1 else ''}{tagged} · {ms:.0f} ms")
        self._update_empty(no_results=n == 0)
        self.resultsShown.emit(n)

    def _on_search_error(self, seq: int, e) -> None:
        if seq != self._seq:
            return
        if e.code == "engine_died":
            self._pending_search = True  # asked again once the engine is back
            return
        self.model_.set_hits([])
        self.status_msg.setText(e.message)
        self.empty.set("Cannot search", _html(e.message))
        self.stack.setCurrentWidget(self.empty)
        self.resultsShown.emit(0)

    def search_like(self, path: str) -> None:
        """Search by example: this photo (plus whatever text is typed)."""
        self.example = path
        name = os.path.basename(path)
        self.chip_label.setText(f"Like: {name}")
        self.chip.setToolTip(path)
        self.chip.show()
        self.run_search()

    def clear_example(self) -> None:
        self.example = None
        self.chip.hide()
        self.run_search()

    def clear_search(self) -> None:
        """Esc: empty the search box and drop the example."""
        self.example = None
        self.chip.hide()
        if self.search.text():
            self.search.clear()
        self.run_search()
        self.search.setFocus()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _type_into_search(self, text: str) -> None:
        self.search.setFocus()
        self.search.end(False)
        self.search.insert(text)

    # -- results and preview --------------------------------------------------------------

    def _on_current(self, cur, _prev) -> None:
        self.preview.show_hit(cur.data(HitRole) if cur.isValid() else None)

    def open_photo(self, path: str) -> None:
        desktop.open_file(path)

    def reveal_photo(self, path: str) -> None:
        desktop.reveal(path)

    def _update_empty(self, no_results: bool = False) -> None:
        """Choose between the grid and an empty state that says why there is nothing."""
        if self.model_.rowCount() > 0:
            self.stack.setCurrentWidget(self.grid)
            return
        state = self.bridge.state
        text = self.search.text().strip()
        folders = self.status.get("folders") if self.status else None
        if state in ("starting", "restarting") and not self.status:
            self.empty.set(
                "Starting the search engine…",
                "The window works already; the model loads in the background.",
            )
        elif state == "failed":
            self.empty.set(
                "The search engine is not running",
                "See the message above.",
                "Try again",
                self.bridge.restart,
            )
        elif folders is not None and not folders:
            demo = self.model is not None and self.model.get("key") == DEMO_MODEL
            hint = ("Add a folder of photos to start. photosift indexes them on this computer and keeps "
                    "watching the folder for new, moved and deleted photos. Nothing leaves your computer.")  # fmt: skip
            if demo:
                hint += ("<br><br>The built-in <b>demo model</b> is active: it knows coloured shapes, not real "
                         "photos. Open <i>Models…</i> to download or import a real one.")  # fmt: skip
            self.empty.set(
                "Welcome to photosift", hint, "Add a folder…", self.library.choose_folder
            )
        elif self.tag_filter and not text and not self.example and no_results:
            self.empty.set(f"No photos tagged {_html(self._tag_names())}",
                           "None carries this tag with the current filters. Lower its threshold in the "
                           "Tags panel, or add the tag to a photo from the preview.",
                           "Show all photos", self.clear_tag_filter)  # fmt: skip
        elif (text or self.example) and no_results:
            what = f"“{_html(text)}”" if text else "this photo"
            self.empty.set(f"No matches for {what}", "Try other words, or clear the filters.")
        elif text or self.example or self.tag_filter:
            self.empty.set("Searching…")
        else:
            n = self.status.get("files", 0) if self.status else 0
            self.empty.set("Type to search" + (f" {n:,} photos" if n else ""),
                           "Describe what you are looking for, drop a photo here to find similar ones, "
                           "or put a minus before words to leave them out (“beach -people”).")  # fmt: skip
        self.stack.setCurrentWidget(self.empty)

    # -- tags (app.tags_panel, app.photo_tags) ------------------------------------------------

    def show_tags(self) -> None:
        """Ctrl+T: the tag browser, with the keyboard in it."""
        self.side.setCurrentWidget(self.tags)
        self.tags.tree.setFocus()

    def set_tag_filter(self, vocab: str, label: str) -> None:
        """Show only photos carrying this label (with the text and the other filters)."""
        self.tag_filter = [{"vocab": vocab, "label": label}]
        self._show_tagchip()
        self.run_search()

    def clear_tag_filter(self) -> None:
        if not self.tag_filter:
            return
        self.tag_filter = []
        self._show_tagchip()
        self.run_search()

    def _show_tagchip(self) -> None:
        self.tag_chip.setVisible(bool(self.tag_filter))
        if self.tag_filter:
            self.tag_chip_label.setText(f"Tag: {self._tag_names()}")
            self.tag_chip.setToolTip(
                ", ".join(f"{t['vocab']} › {t['label']}" for t in self.tag_filter)
            )
        first = self.tag_filter[0] if self.tag_filter else None
        self.tags.set_active((first["vocab"], first["label"]) if first else None)

    def _tag_names(self) -> str:
        return " + ".join(f"“{t['label']}”" for t in self.tag_filter)

    def _check_tag_filter(self) -> None:
        """A label filtered by was renamed or deleted: stop filtering by it."""
        if self.catalog.loaded and self.tag_filter:
            kept = [
                t for t in self.tag_filter if self.catalog.label(t["vocab"], t["label"]) is not None
            ]
            if kept != self.tag_filter:
                self.tag_filter = kept
                self._show_tagchip()
                self.run_search()

    def _on_tags_changed(self) -> None:
        """A threshold was stored: new counts, and the tag's photos again."""
        self.catalog.refresh()
        if self.tag_filter and not self._tag_preview:
            self.run_search(keep_view=True)

    def _show_tag_preview(self, text: str, hits: list) -> None:
        """While a threshold slider moves: the grid shows the photos that would enter or leave."""
        if text:
            self.status_msg.setText(text)
        if hits:
            self._seq += 1  # a search answer still on its way would replace the preview
            self._tag_preview = True
            self.model_.set_hits(hits)
            self.stack.setCurrentWidget(self.grid)
            self.resultsShown.emit(len(hits))
        elif self._tag_preview:
            self.run_search(keep_view=True)  # back to what the grid showed before

    # -- models ------------------------------------------------------------------------------

    def _offer_recommended(self, r: dict) -> None:
        """First run (the demo model in use): offer the recommended real model by name and size."""
        rec = next((m for m in r.get("models", []) if m.get("recommended") and not m.get("here")), None)
        if rec is None or not (self.model and self.model.get("key") == DEMO_MODEL):
            return
        size = fmt_mb(rec.get("size_mb"))
        self.banner.show_message(
            "demo", f"<b>Demo model.</b> photosift is using its small built-in model, which knows coloured "
            f"shapes, not real photos. Download <b>{_html(rec.get('name') or rec['key'])}</b> ({size}) to "
            f"search your photos: once it is here, your library is indexed with it.", "info",
            f"Download ({size})", lambda: self.open_models().download_when_listed(rec["key"]))  # fmt: skip

    def open_models(self) -> ModelsDialog:
        if self._models_dialog is None:
            self._models_dialog = ModelsDialog(self.bridge, self)
            self._models_dialog.modelChanged.connect(self._on_model_changed)
            self._models_dialog.fineTuneRequested.connect(self.open_training)
        else:
            self._models_dialog.refresh()
        self._models_dialog.show()
        self._models_dialog.raise_()
        return self._models_dialog

    def open_training(self) -> TrainDialog:
        """The fine-tuning dialog; one per window, so a training keeps running while it is
        closed and shows its progress (or its result) when it is opened again."""
        if self._train_dialog is None:
            self._train_dialog = TrainDialog(self.bridge, self)
            self._train_dialog.modelAccepted.connect(self._on_model_accepted)
            self._train_dialog.modelChanged.connect(
                lambda m: self._on_model_changed(m, reindex=False)
            )
        else:
            self._train_dialog.refresh()
        self._train_dialog.show()
        self._train_dialog.raise_()
        return self._train_dialog

    def _on_model_accepted(self, _model: dict) -> None:
        if self._models_dialog is not None:
            self._models_dialog.refresh()

    def _on_model_changed(self, model: dict, reindex: bool = True) -> None:
        """`reindex`: False for a fine-tuned model, which shares its base's image space."""
        self.model = model
        if model.get("key") != DEMO_MODEL:
            self.banner.dismiss("demo")
        after = ("The library is re-indexed in the background; searching keeps working." if reindex
                 else "Every photo keeps its stored vector: nothing is re-indexed.")  # fmt: skip
        self.banner.show_message(
            "model", f"Now using <b>{_html(model.get('name') or model['key'])}</b>. {after}"
        )
        if self._models_dialog is not None and not reindex:
            self._models_dialog.refresh()
        self.refresh_status()
        self.run_search()

    # -- drag and drop: search by example ------------------------------------------------------

    @staticmethod
    def _dropped_photo(e) -> str | None:
        md = e.mimeData()
        if not md.hasUrls():
            return None
        for u in md.urls():
            if u.isLocalFile() and os.path.splitext(u.toLocalFile())[1].lower() in IMAGE_EXTS:
                return u.toLocalFile()
        return None

    def dragEnterEvent(self, e: QDragEnterEvent) -> None:
        if self._dropped_photo(e):
            e.acceptProposedAction()

    def dragMoveEvent(self, e) -> None:
        if self._dropped_photo(e):
            e.acceptProposedAction()

    def dropEvent(self, e: QDropEvent) -> None:
        path = self._dropped_photo(e)
        if path:
            e.acceptProposedAction()
            self.search_like(path)

    # -- keyboard ---------------------------------------------------------------------------

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:
        if obj is self.search and ev.type() == QEvent.Type.KeyPress:
            key = ev.key()
            if key == Qt.Key.Key_Escape:
                self.clear_search()
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.run_search()  # now, without waiting for the debounce
                return True
            if key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown) and self.model_.rowCount():
                self.grid.setFocus()
                if not self.grid.currentIndex().isValid():
                    self.grid.setCurrentIndex(self.model_.index(0))
                return True
        return super().eventFilter(obj, ev)

    def keyPressEvent(self, e) -> None:
        if e.key() == Qt.Key.Key_Escape:
            self.clear_search()
            return
        super().keyPressEvent(e)

    # -- settings --------------------------------------------------------------------------

    def _restore(self) -> None:
        s = self.settings
        if s.geometry:
            self.restoreGeometry(QByteArray.fromBase64(s.geometry.encode()))
        if s.window_state:
            self.restoreState(QByteArray.fromBase64(s.window_state.encode()))
        if s.splitter:
            self.splitter.restoreState(QByteArray.fromBase64(s.splitter.encode()))
        if s.folder_filter:
            self.folder_filter.addItem(os.path.basename(s.folder_filter), s.folder_filter)
            self.folder_filter.setCurrentIndex(self.folder_filter.count() - 1)
        if s.last_query:
            self.search.blockSignals(True)
            self.search.setText(s.last_query)
            self.search.blockSignals(False)
            self._pending_search = True

    def save_settings(self) -> None:
        s = self.settings
        s.geometry = bytes(self.saveGeometry().toBase64()).decode()
        s.window_state = bytes(self.saveState().toBase64()).decode()
        s.splitter = bytes(self.splitter.saveState().toBase64()).decode()
        s.last_query = self.search.text()
        s.folder_filter = self.folder_filter.currentData() or ""
        s.save()

    def showEvent(self, e) -> None:
        super().showEvent(e)
        # High-DPI: ask the engine for thumbnails in device pixels (160 px tiles -> 320 px at 2x).
        self.thumbs.set_size(self.settings.thumb_size, self.devicePixelRatioF())
        handle = self.windowHandle()
        if handle is not None and not getattr(self, "_screen_hooked", False):
            self._screen_hooked = True
            handle.screenChanged.connect(lambda *_: self._on_screen_changed())

    def _on_screen_changed(self) -> None:
        self.thumbs.set_size(self.settings.thumb_size, self.devicePixelRatioF())
        self.grid.viewport().update()

    def closeEvent(self, e: QCloseEvent) -> None:
        self.save_settings()
        super().closeEvent(e)


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
