"""Entry point of the frozen photosift bundle (PyInstaller). One executable, three roles:

    photosift [--data-dir DIR] [--theme ...]   the window (app/__main__.py)
    photosift --engine [--data-dir DIR] ...    the engine process; the window starts it itself
                                               (engine.client.default_command() when frozen)
    photosift cli COMMAND ...                  the command line (engine/cli.py), e.g.
                                               ``photosift cli index ~/Pictures``
    photosift-cli COMMAND ...                  the same, from the console twin (Windows only:
                                               the windowed photosift.exe has no console)
    photosift --version

Hidden, for the smoke test (packaging/linux/smoke.sh): ``photosift selftest --hits OUT.json
APP-ARGS`` runs the window's screenshot mode (index a folder, search, show the results) and
writes the names of the photos the grid showed, in order, to OUT.json.

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


def _selftest(argv: list[str]) -> int:
    """``selftest --hits OUT.json APP-ARGS``: the app's screenshot mode, recording the results."""
    import json

    if len(argv) < 2 or argv[0] != "--hits":
        print("usage: photosift selftest --hits OUT.json --folder DIR --query TEXT --screenshot OUT.png ...",
              file=sys.stderr)  # fmt: skip
        return 2
    hits_out, app_argv = Path(argv[1]), argv[2:]
    from app import screenshot
    from app.__main__ import main as app_main

    shoot = screenshot.Shooter._shoot

    def recording_shoot(self, ok: bool) -> None:
        names = [Path(h["path"]).name for h in self.win.model_.hits]
        hits_out.write_text(json.dumps({"ok": ok, "stage": self.stage, "hits": names}, indent=1))
        shoot(self, ok)

    screenshot.Shooter._shoot = recording_shoot
    return app_main(app_argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--engine"]:
        from engine.server import main as engine_main

        return engine_main(argv[1:])
    if Path(sys.executable).stem.lower().endswith("-cli") or argv[:1] == ["cli"]:
        from engine.cli import main as cli_main

        return cli_main(argv[1:] if argv[:1] == ["cli"] else argv)
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
