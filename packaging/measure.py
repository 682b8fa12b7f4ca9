"""Size and cold start of a built bundle. Standard library only: run it with any Python.

    python packaging/measure.py packaging/dist/linux-lean/photosift [--runs 5] [--json OUT]
    python packaging/measure.py packaging/dist/macos-lean/photosift.app

* **size**: bytes on disk of the bundle folder, and its biggest parts.
* **cold start**: wall time from spawning the frozen app (a fresh library folder each time)
  to the first event-loop turn after its window is shown, i.e. painted and taking input (the
  app's ``--startup-probe``, the same probe as ``python -m app.bench``); the engine's
  handshake time beside it. Two kinds of run:
  ``cold_cache``: before each run the bundle's files are dropped from the OS page cache
  (``posix_fadvise(DONTNEED)``, no root needed; Linux), as after a reboot: every library is
  read from disk again; ``warm_cache``: the files are cached, as for a second start.

Uses a real display when there is one ($DISPLAY), else Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tree_size(p: Path) -> int:
    if p.is_file() or p.is_symlink():
        return p.lstat().st_size
    return sum(f.lstat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def biggest(bundle: Path, n: int = 12) -> list[tuple[str, float]]:
    """The largest entries one level inside _internal/ (and the executables), in MB."""
    inner = bundle / "Contents" / "Frameworks" if bundle.suffix == ".app" else bundle / "_internal"
    entries = [
        *(inner.iterdir() if inner.is_dir() else ()),
        *(p for p in bundle.iterdir() if p.is_file()),
    ]
    sized = sorted(((tree_size(p), p) for p in entries), reverse=True)[:n]
    return [(str(p.relative_to(bundle)), round(s / 2**20, 1)) for s, p in sized]


def drop_from_cache(bundle: Path) -> int:
    """Ask the kernel to forget the cached pages of every file in the bundle."""
    if not hasattr(os, "posix_fadvise"):
        return 0
    n = 0
    for f in bundle.rglob("*"):
        if f.is_file() and not f.is_symlink():
            try:
                fd = os.open(f, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += 1
            finally:
                os.close(fd)
    return n


def start_once(exe: Path, env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="photosift-cold-") as d:
        t0 = time.perf_counter()
        p = subprocess.Popen([str(exe), "--data-dir", d, "--startup-probe"], env=env, cwd=d,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        out = {}
        for line in p.stdout:
            now = round((time.perf_counter() - t0) * 1000, 1)
            if line.startswith("shown"):
                out["shown_ms"] = now
            elif line.startswith("engine"):
                out["engine_ready_ms"] = now
        err = p.stderr.read()
        p.wait(120)
        if "shown_ms" not in out:
            raise SystemExit(f"the app did not start (exit {p.returncode}):\n{err[-3000:]}")
        return out


def find_exe(bundle: Path) -> Path:
    if bundle.suffix == ".app":
        return bundle / "Contents" / "MacOS" / "photosift"
    return bundle / ("photosift.exe" if sys.platform == "win32" else "photosift")


def cold_start(bundle: Path, runs: int) -> dict:
    exe = find_exe(bundle)
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    env.pop("PYTHONPATH", None)
    res: dict = {"platform": env.get("QT_QPA_PLATFORM") or "native"}
    for kind in ("cold_cache", "warm_cache"):
        rows = []
        for _ in range(runs):
            if kind == "cold_cache":
                drop_from_cache(bundle)
            rows.append(start_once(exe, env))
        shown = [r["shown_ms"] for r in rows]
        engine = [r["engine_ready_ms"] for r in rows if "engine_ready_ms" in r]
        res[kind] = dict(shown_ms=shown, engine_ready_ms=engine, shown_ms_median=statistics.median(shown),
                         engine_ready_ms_median=statistics.median(engine) if engine else None)  # fmt: skip
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "bundle", type=Path, help="the bundle folder (holds the photosift executable), or the .app"
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-start", action="store_true", help="sizes only")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    bundle = args.bundle.resolve()
    if not find_exe(bundle).is_file():
        ap.error(f"no photosift executable in {bundle}")
    out: dict = {
        "bundle": str(bundle),
        "size_mb": round(tree_size(bundle) / 2**20, 1),
        "biggest_mb": biggest(bundle),
    }
    print(f"size: {out['size_mb']} MB; biggest: {out['biggest_mb']}", flush=True)
    if not args.skip_start:
        out["cold_start"] = cold_start(bundle, args.runs)
        print("start:", json.dumps(out["cold_start"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
