"""A screenshot of the fine-tuning dialog after a real run, for the README and review.

    xvfb-run -a -s "-screen 0 1400x900x24" python -m app.train_screenshot resources/screenshots/fine-tune.png

In a fresh temporary library with the demo model: generate a folder per label (words
the demo model never read, for things its image tower sees: app.sampledata.DEMO_LABELS), index it, open the dialog,
train ("normal" length: it stops once validation stops improving), and save a grab of
the dialog on its result page. Event driven, never sleeping; a deadline ends it.
Pass ``--progress OUT.png`` to also grab the training page halfway through.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m app.train_screenshot", description=__doc__.split("\n")[0]
    )
    ap.add_argument("out", type=Path, help="where to save the PNG")
    ap.add_argument("--progress", type=Path, help="also grab the training page mid-run")
    ap.add_argument(
        "--kinds", default="ring,moon,heart", help="the labels (demo-world shape kinds)"
    )
    ap.add_argument("--per-label", type=int, default=20)
    ap.add_argument("--size", default="860x820", help="the dialog's size WxH")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from . import theme
    from .engine_bridge import EngineBridge
    from .main_window import MainWindow
    from .sampledata import label_folders
    from .settings import AppSettings

    tmp = Path(tempfile.mkdtemp(prefix="photosift-shot-"))
    root = label_folders(tmp / "My labels", per_label=args.per_label)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("photosift")
    theme.apply(app, "light")
    bridge = EngineBridge(tmp / "data")
    win = MainWindow(bridge, AppSettings.load(tmp / "data"))
    win.resize(1200, 800)
    win.show()
    state = {"ok": False, "job": None, "stage": "engine", "t0": time.monotonic()}

    def shoot(widget, out: Path) -> bool:
        out.parent.mkdir(parents=True, exist_ok=True)
        saved = widget.grab().save(str(out))
        print(f"screenshot {'saved' if saved else 'NOT saved'}: {out}", file=sys.stderr)
        return saved

    def on_ready(_hello):
        if state["stage"] == "engine":
            state["stage"] = "indexing"
            win.library.add_folder(str(root), on_done=lambda r: state.update(job=r.get("job")))

    def on_event(ev):
        if (
            state["stage"] == "indexing"
            and ev["event"] == "job_done"
            and ev.get("job") == state["job"]
        ):
            state["stage"] = "training"
            dlg = win.open_training()
            w, h = (int(x) for x in args.size.lower().split("x"))
            dlg.resize(w, h)
            dlg.src_folder.setChecked(True)
            dlg.folder_combo.setEditText(str(root))
            dlg.pages.currentChanged.connect(lambda i: i == 2 and QTimer.singleShot(400, finish))
            dlg.start()
        elif state["stage"] == "training" and ev["event"] == "progress" and args.progress:
            d = ev.get("data") or {}
            if d.get("total") and d["done"] >= d["total"] // 3:
                state["stage"] = "trained-a-third"
                QTimer.singleShot(200, lambda: shoot(win.open_training(), args.progress))
        elif ev["event"] == "job_failed" and state["stage"] != "done":
            print(f"a job failed: {(ev.get('data') or {}).get('message')}", file=sys.stderr)
            state["stage"] = "done"
            app.quit()

    def finish():
        if state["stage"] == "done":
            return
        state["stage"] = "done"
        dlg = win.open_training()
        state["ok"] = dlg.pages.currentIndex() == 2 and shoot(dlg, args.out)
        took = time.monotonic() - state["t0"]
        print(
            f"{dlg.labels_text.text()}\n{dlg.general_text.text()}\n({took:.0f} s)", file=sys.stderr
        )
        app.quit()

    def give_up():
        if state["stage"] != "done":
            print(f"train_screenshot: timed out while {state['stage']}", file=sys.stderr)
            state["stage"] = "done"
            app.quit()

    bridge.ready.connect(on_ready)
    bridge.event.connect(on_event)
    QTimer.singleShot(int(args.timeout * 1000), give_up)
    QTimer.singleShot(0, win.start_engine)
    try:
        app.exec()
    finally:
        bridge.stop()
    return 0 if state["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
