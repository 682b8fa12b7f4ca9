"""Smoke test of a frozen bundle on any OS (the CI's Windows and macOS jobs; Linux has the fuller
packaging/linux/smoke.sh, which also installs and uninstalls the tarball).

    packaging/.build-venv/bin/python packaging/ci_smoke.py EXE [--cli EXE]

EXE is the frozen photosift (``.../photosift``, ``photosift.app/Contents/MacOS/photosift``,
``photosift.exe``); --cli the executable for command-line use (``photosift-cli.exe`` on
Windows; default EXE with the ``cli`` argument). Offline and offscreen, with a scratch library:
``--version``; the bundled demo model is listed; the command line indexes 24 generated photos
and ``search "a red object"`` puts the red ones first; the window (which starts its engine from
the same executable) indexes them, searches and shows the red ones first; its About box shows
the icon, version and library folder; its model manager lists models with sizes, fails a download
clearly (offline mode) and imports a model folder from disk. Exit 0 on success.

The Python running this generates the photos (numpy, Pillow, PySide6: the build venv has them);
the bundle under test never sees it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERY = "a red object"


def run(cmd: list[str], env: dict, cwd: Path, timeout: float = 300) -> str:
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    print(f"  $ {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}  ({took:.1f} s, exit {p.returncode})",
          flush=True)  # fmt: skip
    if p.returncode != 0:
        raise SystemExit(f"SMOKE FAIL: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return p.stdout


def reds_first(names: list[str], top: int = 6, need: int = 5) -> bool:
    return sum(n.startswith("red-") for n in names[:top]) >= need


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exe", type=Path)
    ap.add_argument("--cli", type=Path, help="executable for command-line use (default: EXE cli)")
    args = ap.parse_args(argv)
    exe = args.exe.resolve()
    cli = [str(args.cli.resolve())] if args.cli else [str(exe), "cli"]
    sys.path.insert(0, str(ROOT))
    from app import __version__
    from app.sampledata import colour_folder

    with tempfile.TemporaryDirectory(prefix="photosift-smoke-") as tmp:
        t = Path(tmp)
        colour_folder(t / "photos")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(
            PHOTOSIFT_HOME=str(t / "library"), HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen"
        )
        work = t / "work"
        work.mkdir()

        print("== version, models", flush=True)
        out = run([*cli, "--version"], env, work).strip()
        assert out == f"photosift {__version__}", f"SMOKE FAIL: --version said {out!r}"
        models = json.loads(run([*cli, "models", "list", "--json"], env, work))
        assert any(m["key"] == "photosift-demo" and m["here"] for m in models), models

        print("== command line: index, search", flush=True)
        rep = json.loads(run([*cli, "index", str(t / "photos"), "--json"], env, work))
        assert rep["files"] == 24 and rep["embedded"] == 24 and rep["failed"] == 0, rep
        hits = json.loads(run([*cli, "search", QUERY, "-k", "6", "--json"], env, work))
        names = [Path(h["path"]).name for h in hits]
        assert reds_first(names), f"SMOKE FAIL: cli search gave {names}"
        print(f"  top: {names}", flush=True)

        print("== window: index, search, results, About, Models", flush=True)
        my_model = t / "my-model"  # a model folder to import from disk: the demo, renamed
        my_model.mkdir()
        for name in ("image.onnx", "text.onnx", "tokenizer.json"):
            shutil.copy2(ROOT / "resources" / "demo" / name, my_model / name)
        spec = json.loads((ROOT / "resources" / "demo" / "model.json").read_text(encoding="utf-8"))
        spec.update(key="my-imported-model", name="My imported model")
        (my_model / "model.json").write_text(json.dumps(spec), encoding="utf-8")
        hits_json = t / "hits.json"
        run([str(exe), "selftest", "--hits", str(hits_json), "--import-model", str(my_model),
             "--data-dir", str(t / "gui-library"),
             "--screenshot", str(t / "window.png"), "--folder", str(t / "photos"), "--query", QUERY,
             "--timeout", "200"], env, work, timeout=300)  # fmt: skip
        res = json.loads(hits_json.read_text())
        assert res["ok"] and len(res["hits"]) == 24 and reds_first(res["hits"]), (
            f"SMOKE FAIL: window {res}"
        )
        assert res["about_icon"] and res["window_icon"], f"SMOKE FAIL: no icon {res}"
        assert f"Version {__version__}" in res["about"], f"SMOKE FAIL: About box {res['about']!r}"
        assert Path(res["data_dir"]).resolve() == (t / "gui-library").resolve(), (
            f"SMOKE FAIL: library {res['data_dir']}"
        )
        m = res["models"]
        assert m["listed"] and all(r[1] not in ("", "—") for r in m["rows"]), (
            f"SMOKE FAIL: sizes {m}"
        )
        assert m["download_enabled"] and "failed" in m["download_message"], f"SMOKE FAIL: {m}"
        assert m["import_message"].startswith("Imported") and any(
            r[0] == "My imported model" and r[-1] == "here" for r in m["rows_after_import"]
        ), f"SMOKE FAIL: import {m}"
        print(f"  top: {res['hits'][:6]}", flush=True)
    print("SMOKE PASS", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
