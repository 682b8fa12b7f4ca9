"""``python -m app``: the photosift window.

    python -m app [--data-dir DIR] [--model KEY] [--theme system|light|dark]
    python -m app --screenshot OUT.png --folder PHOTOS --query "a red object"
    python -m app --screenshot OUT.png --folder PHOTOS --query "" --vocab-starter shapes-world --tag shapes-world:red

The screenshot mode starts the window, adds and indexes a folder, searches, selects the
first result, waits for its thumbnails and preview, saves a grab of the window and
exits (status 0 on success). It needs a real display (or Xvfb: ``xvfb-run python -m app
--screenshot ...``); offscreen works too but draws no window decorations.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()  # cold-start clock: as early as this process can read it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m app", description="photosift: search your photos")
    ap.add_argument(
        "--data-dir",
        type=Path,
        help="library location (default: $PHOTOSIFT_HOME or the user-data folder)",
    )
    ap.add_argument("--model", help="use this model key for this session")
    ap.add_argument(
        "--theme",
        choices=("system", "light", "dark"),
        help="default: the saved choice, else follow the system",
    )
    ap.add_argument(
        "--screenshot",
        type=Path,
        metavar="OUT.png",
        help="save a screenshot of the window with results, then exit",
    )
    ap.add_argument(
        "--folder", type=Path, help="with --screenshot: the folder of photos to add and index"
    )
    ap.add_argument("--query", default="a red object", help="with --screenshot: what to search for")
    ap.add_argument("--size", default="1280x800", help="with --screenshot: window size WxH")
    ap.add_argument(
        "--vocab-starter",
        metavar="NAME",
        help="with --screenshot: make this starter vocabulary after indexing",
    )
    ap.add_argument(
        "--tag",
        metavar="VOCAB:LABEL",
        help="with --screenshot: browse this tag (with --query, if given)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="with --screenshot: give up after this many seconds",
    )
    ap.add_argument(
        "--startup-probe", action="store_true", help=argparse.SUPPRESS
    )  # the benchmark's
    ap.add_argument(  # app.bench: ms from start to the first search's results in the grid
        "--first-result-probe", metavar="QUERY", help=argparse.SUPPRESS
    )
    ap.add_argument("--log-level", default=os.environ.get("PHOTOSIFT_LOG", "WARNING"))
    args = ap.parse_args(argv)
    if args.screenshot and not args.folder:
        ap.error("--screenshot needs --folder")
    if args.screenshot and not args.folder.is_dir():
        ap.error(f"--folder {args.folder}: no such folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s app %(levelname)s %(name)s: %(message)s"
    )

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from . import __version__, theme
    from .engine_bridge import EngineBridge
    from .main_window import MainWindow
    from .settings import AppSettings, default_data_dir

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("photosift")
    app.setOrganizationName("photosift")
    app.setApplicationDisplayName("photosift")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("photosift")  # Wayland/X11 match the window to photosift.desktop
    from .about import app_icon

    app.setWindowIcon(app_icon())
    data_dir = args.data_dir or default_data_dir()
    settings = AppSettings.load(data_dir)
    theme.apply(app, args.theme or settings.theme)
    bridge = EngineBridge(data_dir, model=args.model)
    # The engine process starts first: its imports and model loading overlap building the
    # window (it answers through the event loop, which runs once the window is up).
    bridge.start()
    win = MainWindow(bridge, settings)
    if args.screenshot:
        w, h = (int(x) for x in args.size.lower().split("x"))
        win.resize(w, h)
    win.show()
    if args.startup_probe:
        # The first event-loop turn after show(): the window is painted and takes input.
        def shown():
            print(f"shown {1000 * (time.perf_counter() - T0):.1f}", flush=True)

        bridge.ready.connect(lambda _h: (print(f"engine {1000 * (time.perf_counter() - T0):.1f}", flush=True),
                                         QTimer.singleShot(0, app.quit)))  # fmt: skip
        QTimer.singleShot(0, shown)
    if args.first_result_probe:
        # As a user who starts the app and types a search at once: the query goes in as soon as
        # the window takes input (it is sent when the engine is ready), then the first results.
        def typed():
            print(f"shown {1000 * (time.perf_counter() - T0):.1f}", flush=True)
            win.search.setText(args.first_result_probe)
            win.run_search()

        def results(n: int):
            if n:
                print(f"result {1000 * (time.perf_counter() - T0):.1f} {n}", flush=True)
                QTimer.singleShot(0, app.quit)

        win.resultsShown.connect(results)
        QTimer.singleShot(0, typed)
    shooter = None
    if args.screenshot:
        from .screenshot import Shooter

        shooter = Shooter(win, args.folder, args.query, args.screenshot, args.timeout,
                          vocab_starter=args.vocab_starter, tag=args.tag)  # fmt: skip
        shooter.start()
    try:
        code = app.exec()
    finally:
        win.save_settings()
        bridge.stop()
    if shooter is not None:
        return 0 if shooter.ok else 1
    return code


if __name__ == "__main__":
    sys.exit(main())
