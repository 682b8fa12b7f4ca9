"""Drives the window to a state worth a screenshot, then saves a grab of it.

Event driven, never sleeping: engine ready -> add the folder -> its scan finishes ->
search -> results -> first one selected -> thumbnails on screen and preview loaded ->
grab. A deadline ends it (with whatever is on screen) so a broken engine cannot hang it.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from PySide6.QtCore import QObject, QRect, QTimer
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)


def visible_paths(win) -> list[str]:
    """Paths of the results whose tiles are (at least partly) on screen."""
    grid, model = win.grid, win.model_
    vp: QRect = grid.viewport().rect()
    out = []
    for row in range(model.rowCount()):
        r = grid.visualRect(model.index(row))
        if r.intersects(vp):
            out.append(model.hits[row]["path"])
        elif r.top() > vp.bottom():
            break
    return out


def thumbnails_loaded(win) -> bool:
    paths = visible_paths(win)
    return bool(paths) and all(
        win.thumbs._mem.get(p) is not None or win.thumbs.failed(p) for p in paths
    )


class Shooter(QObject):
    """`vocab_starter`: make that starter vocabulary once the folder is indexed; `tag`
    ("vocabulary:label"): browse that tag in the tag browser (then `query` may be empty)."""

    def __init__(self, win, folder: Path, query: str, out: Path, timeout: float = 180.0,
                 vocab_starter: str | None = None, tag: str | None = None):  # fmt: skip
        super().__init__(win)
        self.vocab_starter = vocab_starter
        self.tag = tuple(tag.split(":", 1)) if tag else None
        self.win, self.folder, self.query, self.out = (
            win,
            str(Path(folder).resolve()),
            query,
            Path(out),
        )
        self.timeout = timeout
        self.ok = False
        self.job: str | None = None
        self.stage = "engine"
        self._t0 = time.monotonic()
        self._poll = QTimer(self, interval=100, timeout=self._check)

    def start(self) -> None:
        self.win.bridge.ready.connect(self._on_ready)
        self.win.bridge.event.connect(self._on_event)
        self.win.resultsShown.connect(self._on_results)
        QTimer.singleShot(int(self.timeout * 1000), self._give_up)

    def _on_ready(self, _hello) -> None:
        if self.stage != "engine":
            return
        self.stage = "indexing"
        self.win.library.add_folder(self.folder, on_done=self._added)

    def _added(self, r: dict) -> None:
        self.job = r.get("job")
        if self.job is None:
            self._search()

    def _on_event(self, ev: dict) -> None:
        if (
            self.stage == "indexing"
            and ev.get("job") == self.job
            and ev["event"] in ("job_done", "job_failed")
        ):
            self._search()

    def _search(self) -> None:
        if self.vocab_starter and self.stage == "indexing":
            self.stage = "tagging"
            key = self.vocab_starter
            self.win.bridge.call("vocab_create", {"name": key, "starter": key},
                                 on_result=lambda r: self._tagged(r), on_error=lambda e: self._tagged(None))  # fmt: skip
            return
        self.stage = "searching"
        self.win.search.setText(self.query)
        if self.tag:
            self.win.side.setCurrentWidget(self.win.tags)
            self.win.set_tag_filter(*self.tag)
        else:
            self.win.run_search()

    def _tagged(self, r: dict | None) -> None:
        if r is None:
            print(
                f"screenshot: could not make the {self.vocab_starter!r} vocabulary", file=sys.stderr
            )
        else:
            self.win.catalog.set_vocab(r["vocab"])
        self._search()

    def _on_results(self, n: int) -> None:
        if self.stage != "searching" or n == 0:
            return
        self.stage = "settling"
        self.win.grid.setFocus()
        self.win.grid.setCurrentIndex(self.win.model_.index(0))
        if self.tag:  # the label's threshold slider shows under the tag browser
            item = self.win.tags.item_for(*self.tag)
            if item is not None:
                self.win.tags.tree.setCurrentItem(item)
        self._poll.start()

    def _check(self) -> None:
        if (
            thumbnails_loaded(self.win)
            and self.win.preview.has_image()
            and self.win.library.folders
            and (not self.tag or self.win.preview.tags_view.rows)
        ):
            self._poll.stop()
            QTimer.singleShot(300, lambda: self._shoot(True))  # one more paint after the last tile

    def _shoot(self, ok: bool) -> None:
        if self.stage == "done":
            return
        self.stage = "done"
        self.win.banner.dismiss("restarted")
        grab = self.win.grab()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        saved = grab.save(str(self.out))
        self.ok = ok and saved
        took = time.monotonic() - self._t0
        print(f"screenshot {'saved' if saved else 'NOT saved'}: {self.out} ({grab.width()}x{grab.height()}, "
              f"{len(self.win.model_.hits)} results, {took:.1f} s)", file=sys.stderr)  # fmt: skip
        QApplication.instance().quit()

    def _give_up(self) -> None:
        if self.stage != "done":
            print(f"screenshot: timed out while {self.stage}", file=sys.stderr)
            self._shoot(False)
