"""Entry point of the frozen photosift bundle (PyInstaller). One executable, three roles:

    photosift [--data-dir DIR] [--theme ...]   the window (app/__main__.py)
    photosift --engine [--data-dir DIR] ...    the engine process; the window starts it itself
                                               (engine.service.client.default_command() when frozen)
    photosift cli COMMAND ...                  the command line (engine/cli/), e.g.
                                               ``photosift cli index ~/Pictures``
    photosift-cli COMMAND ...                  the same, from the console twin (Windows only:
                                               the windowed photosift.exe has no console)
    photosift --version

Hidden, started by the engine itself: ``photosift --train-job ...`` (fine-tuning,
engine.finetune.job) and ``photosift --convert ...`` (downloaded weights to ONNX,
engine.models.convert), the frozen form of ``python -m training.finetune.job`` and
``python -m training.export.convert``; they need the training bundle's torch.

Hidden, for the smoke test (packaging/linux/smoke.sh): ``photosift selftest --hits OUT.json
APP-ARGS`` runs the window's screenshot mode (index a folder, search, show the results) and
writes the names of the photos the grid showed, in order, to OUT.json, with what the About
box says (version, library folder) and whether the window and the About box have their icon.

Nothing heavy is imported before the role is known: the engine process never loads Qt and
the window never loads onnxruntime.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _restore_library_path() -> None:
    """Children of the window (xdg-open, a file manager) must not inherit the bundle's libraries.

    PyInstaller's Linux bootloader prepends the bundle to LD_LIBRARY_PATH and keeps the user's
    value in LD_LIBRARY_PATH_ORIG. The dynamic loader has already read it for this process, so
    changing os.environ only affects what we start; the engine child is this same frozen
    executable, whose bootloader sets the path up again.
    """
    if not sys.platform.startswith("linux"):
        return
    orig = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if orig is not None:
        os.environ["LD_LIBRARY_PATH"] = orig
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)


def _wait(cond, timeout: float) -> bool:
    """Run the Qt event loop until cond() holds or `timeout` seconds pass (selftest only)."""
    import time

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)
    return True


def _models_check(win, import_dir: Path, download_key: str) -> dict:
    """The model manager as a first-run user meets it: the list with sizes, a download that
    cannot reach the hub (it must say so), and importing a model folder from disk."""
    from PySide6.QtCore import Qt

    dlg = win.open_models()
    out: dict = {}
    out["listed"] = _wait(lambda: dlg.table.rowCount() > 1 and dlg.table.item(0, 1) is not None, 60)
    out["rows"] = _rows(dlg)
    for r in range(dlg.table.rowCount()):
        if dlg.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == download_key:
            dlg.table.selectRow(r)
    out["download_enabled"] = dlg.download_btn.isEnabled()
    before = dlg.message.text()
    dlg.download_selected()
    # "Downloading KEY…" while it tries, then the job's outcome (or the call's error)
    _wait(
        lambda: (
            dlg.message.text() not in (before, "")
            and not dlg.message.text().startswith("Downloading")
        ),
        120,
    )
    out["download_message"] = dlg.message.text()
    before = dlg.message.text()
    dlg.import_folder(str(import_dir))  # what Import folder… does once a folder is chosen
    _wait(lambda: dlg.message.text() != before, 60)
    out["import_message"] = dlg.message.text()
    _wait(lambda: len(_rows(dlg)) > len(out["rows"]), 20)  # the list refreshes after an import
    out["rows_after_import"] = _rows(dlg)
    dlg.close()
    return out


def _rows(dlg) -> list[list[str]]:
    t = dlg.table
    return [[t.item(r, c).text() if t.item(r, c) else "" for c in range(t.columnCount())]
            for r in range(t.rowCount())]  # fmt: skip


def _selftest(argv: list[str]) -> int:
    """``selftest --hits OUT.json [--import-model DIR] APP-ARGS``: the app's screenshot mode,
    recording the results, the About box and (with --import-model) the model manager."""
    import json

    if len(argv) < 2 or argv[0] != "--hits":
        print("usage: photosift selftest --hits OUT.json [--import-model DIR] --folder DIR --query TEXT "
              "--screenshot OUT.png ...", file=sys.stderr)  # fmt: skip
        return 2
    hits_out, app_argv = Path(argv[1]), argv[2:]
    import_dir = None
    if app_argv[:1] == ["--import-model"]:
        import_dir, app_argv = Path(app_argv[1]), app_argv[2:]
    from app import screenshot
    from app.__main__ import main as app_main

    shoot = screenshot.Shooter._shoot
    recorded = []

    def recording_shoot(self, ok: bool) -> None:
        if recorded:  # the Shooter's give-up timer can fire while the checks below run
            return
        recorded.append(True)
        from PySide6.QtWidgets import QApplication

        from app.about import show_about

        names = [Path(h["path"]).name for h in self.win.model_.hits]
        about = show_about(self.win)  # Help > About, as a user opens it: icon, version, library
        out = {
            "ok": ok, "stage": self.stage, "hits": names,
            "about": about.text.text(), "about_icon": not about.icon.pixmap().isNull(),
            "window_icon": not QApplication.windowIcon().isNull(),
            "data_dir": str(about.data_dir),
            "engine_command": list(self.win.bridge.client.command),
        }  # fmt: skip
        pid = (self.win.bridge.hello or {}).get("pid")
        if pid and Path(f"/proc/{pid}/exe").exists():  # Linux: which program the engine really is
            out["engine_exe"] = os.readlink(f"/proc/{pid}/exe")
        about.close()
        if import_dir is not None:
            out["models"] = _models_check(self.win, import_dir, "vit-b-32-256-datacomp")
        hits_out.write_text(json.dumps(out, indent=1))
        shoot(self, ok)

    screenshot.Shooter._shoot = recording_shoot
    return app_main(app_argv)


def _selftest_train(argv: list[str]) -> int:
    """``selftest-train WORKDIR``: what the training extra is in the bundle for. A tiny random
    open_clip ViT-B-32-256 laid out as on the hub goes through the same conversion a downloaded
    open_clip model does (engine.models.convert.convert_open_clip: torch -> ONNX, in this
    executable's --convert role), and the result must run in ONNX Runtime. Prints a JSON report;
    exit 0 when the converted folder works."""
    import json

    if len(argv) != 1:
        print("usage: photosift selftest-train WORKDIR", file=sys.stderr)
        return 2
    work = Path(argv[0])
    import torch

    from engine.models.convert import convert_open_clip
    from engine.models.folder import check_model_folder
    from engine.settings import Settings
    from training.testmodels.tiny import build_tiny, save_open_clip_dir

    tiny = build_tiny("vit-b-32-256", work / "tiny")
    weights = save_open_clip_dir(tiny, work / "weights")
    folder = convert_open_clip(tiny.spec, Settings(data_dir=work / "library"), weights)
    check_model_folder(folder)
    print(json.dumps({"torch": torch.__version__, "folder": str(folder),
                      "files": sorted(p.name for p in folder.iterdir())}))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--engine"]:
        from engine.service.server import main as engine_main

        return engine_main(argv[1:])
    if Path(sys.executable).stem.lower().endswith("-cli") or argv[:1] == ["cli"]:
        from engine.cli import main as cli_main

        return cli_main(argv[1:] if argv[:1] == ["cli"] else argv)
    if argv[:1] == ["--train-job"]:  # engine.finetune.job.child_command: the fine-tuning child
        from training.finetune.job import main as train_job_main

        return train_job_main(argv[1:])
    if argv[:1] == ["--convert"]:  # engine.models.convert: converting downloaded weights to ONNX
        from training.export.convert import main as convert_main

        return convert_main(argv[1:])
    if argv[:1] == ["selftest-train"]:
        return _selftest_train(argv[1:])
    if argv[:1] in (["--version"], ["-V"]):
        from app import __version__

        print(f"photosift {__version__}")
        return 0
    _restore_library_path()
    if argv[:1] == ["selftest"]:
        return _selftest(argv[1:])
    from app.__main__ import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # harmless when nothing uses process pools; vital on Windows if something does
    sys.exit(main())
