"""`photosift` command line. Library code raises typed errors; this module decides what users see."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .errors import PhotosiftError

EXIT_ERROR = 1
EXIT_CANCELLED = 130


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class _Bar:
    """One-line progress bar on stderr (only when it is a terminal, or when asked)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        width = 30
        fill = int(width * p.fraction)
        line = (
            f"\r[{'#' * fill}{'.' * (width - fill)}] {p.done}/{p.total} "
            f"{p.rate:5.1f}/s ETA {_fmt_eta(p.eta_s)} failed {p.failed}"
        )
        sys.stderr.write(line)
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _library(args):
    from .instance import InstanceLock
    from .library import Library
    from .settings import Settings

    settings = Settings.load(args.data_dir)
    if args.model:
        settings.model = args.model
    if getattr(args, "int8", False):
        settings.int8 = True
    # One writer per library: refused clearly while the app's engine has it open.
    _HELD.enter_context(InstanceLock(settings.data_dir, "command line", wait_s=0.5))
    return Library(settings)


_HELD = contextlib.ExitStack()  # data-folder locks this command holds until it ends


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        print(json.dumps([dict(image_id=h.image_id, score=round(h.score, 5), path=h.path,
                               online=h.online, taken_at=h.info.get("taken_at")) for h in hits],
                         ensure_ascii=False, indent=1))  # fmt: skip
        return
    if not hits:
        print("no results")
    for n, h in enumerate(hits, 1):
        off = "" if h.online else "  (offline)"
        print(f"{n:3d}  {h.score:6.3f}  {h.path}{off}")


def cmd_index(args) -> int:
    lib = _library(args)
    folders = [lib.add_folder(d, poll=args.poll) for d in args.dirs]
    cancel = threading.Event()
    old = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # first Ctrl-C: stop after this batch
    bar = _Bar(sys.stderr.isatty() or args.progress)
    try:
        rep = lib.scan(folders, progress=bar, cancel=cancel)
    finally:
        bar.close()
        signal.signal(signal.SIGINT, old)
        lib.close()
    summary = dict(
        files=rep.total, embedded=rep.embedded, reused=rep.reused, unchanged=rep.unchanged,
        failed=rep.failed, removed=rep.removed, offline=rep.offline, cancelled=rep.cancelled,
        seconds=round(rep.elapsed_s, 2), failures=[dict(path=p, reason=r) for p, r in rep.failures],
    )  # fmt: skip
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=1))
    else:
        print(
            f"{rep.embedded} photos embedded, {rep.reused} reused without decoding, "
            f"{rep.unchanged} unchanged, {rep.removed} removed, {rep.failed} could not be read "
            f"({rep.elapsed_s:.1f} s)"
        )
        for p, r in rep.failures[:20]:
            print(f"  skipped {p}: {r}")
        if len(rep.failures) > 20:
            print(f"  ... and {len(rep.failures) - 20} more (see `photosift status`)")
        for f in rep.offline or []:
            print(f"  folder offline, kept as it was: {f}")
        if rep.cancelled:
            print("stopped; run the same command again to resume where it left off")
    return EXIT_CANCELLED if rep.cancelled else 0


def _filters(args):
    from .search import Filters

    return Filters(
        folders=[str(Path(f).expanduser().resolve()) for f in args.folder or []],
        date_from=args.date_from, date_to=args.date_to, exts=args.type or [],
    )  # fmt: skip


def cmd_search(args) -> int:
    """`search TEXT [--like PHOTO]` and `similar PHOTO [--text TEXT]`: one query, two spellings."""
    from .search import Query

    if args.command == "similar":
        text, like = args.text or "", [args.photo]
    else:
        text, like = args.text, args.like or []
    lib = _library(args)
    try:
        q = Query(text=text, like=like, negatives=args.exclude or [], filters=_filters(args), k=args.k)
        _print_hits(lib.search(q), args.json)
    finally:
        lib.close()
    return 0


def cmd_status(args) -> int:
    lib = _library(args)
    try:
        st = lib.status()
    finally:
        lib.close()
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=1, default=str))
        return 0
    m = st["model"]
    print(f"model: {m.get('key', '?')} — {m.get('name', m.get('error'))}")
    print(f"photos: {st['images']}  files: {st['files']}  could not be read: {st['failures']}")
    for space, n in st["vectors"].items():
        print(f"vectors in space {space}: {n}")
    for f in st["folders_detail"]:
        state = "online" if f["online"] else "OFFLINE (kept, not emptied)"
        print(f"folder {f['path']}: {f['files']} files, {f['failures']} failed, {state}")
    for f in st["failures_detail"][: args.limit]:
        print(f"  failed: {f['path']}: {f['reason']}")
    return 0


def cmd_models(args) -> int:
    from .hub import full_registry, import_model_folder, local_model_folder
    from .settings import Settings

    settings = Settings.load(args.data_dir)
    if args.action == "list":
        rows = []
        for s in full_registry(settings):
            here = local_model_folder(s, settings)
            rows.append(dict(key=s.key, name=s.name, family=s.family, embed_dim=s.embed_dim,
                             size_mb=s.size_mb, speed=s.speed_class, license=s.license,
                             here=bool(here), active=s.key == settings.model))  # fmt: skip
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            for r in rows:
                mark = "*" if r["active"] else " "
                here = "here" if r["here"] else "download"
                size = f"{r['size_mb']:.0f} MB" if r["size_mb"] else "?"
                print(f"{mark} {r['key']:28s} {here:9s} {size:>8s}  {r['speed'] or '':7s} {r['license']:12s} {r['name']}")
        return 0
    if args.action == "download":
        if not args.key:
            raise SystemExit("models download needs a model key (see `photosift models list`)")
        from .hub import DownloadProgress, fetch_model

        def show(p: DownloadProgress):
            if sys.stderr.isatty():
                tot = f"/{p.total / 1e6:.0f}" if p.total else ""
                sys.stderr.write(f"\r{p.file}: {p.done / 1e6:.1f}{tot} MB")

        folder = fetch_model(full_registry(settings).get(args.key), settings, progress=show)
        print(f"model {args.key} is ready in {folder}")
        return 0
    if args.action == "import":
        if not args.key:
            raise SystemExit("models import needs a folder")
        spec = import_model_folder(Path(args.key), settings)
        print(f"imported model {spec.key} ({spec.name})")
        return 0
    if args.action == "quantize":
        if not args.key:
            raise SystemExit("models quantize needs a model key")
        import shutil

        from .quantize import quantize_folder
        from .registry import resources_dir

        spec = full_registry(settings).get(args.key)
        folder = local_model_folder(spec, settings)
        if folder is None:
            raise SystemExit(f"model {args.key} is not here yet; download or import it first")
        if resources_dir() in folder.parents:  # bundled: never write into the app's own files
            dest = settings.models_dir / spec.key
            shutil.copytree(folder, dest, dirs_exist_ok=True)
            folder = dest
        quantize_folder(folder)
        print(f"wrote {folder / 'image.int8.onnx'}; index with --int8 (or set int8 in settings) to use it")
        return 0
    if args.action == "use":
        reg = full_registry(settings)
        reg.get(args.key)
        settings.model = args.key
        settings.save()
        print(f"active model: {args.key}")
        return 0
    raise SystemExit(f"unknown action {args.action}")


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photosift", description="Search and tag your photos locally.")
    p.add_argument("--version", action="version", version=f"photosift {__version__}")
    p.add_argument("--data-dir", type=Path, help="library location (default: platform user-data folder, or $PHOTOSIFT_HOME)")
    p.add_argument("--model", help="model key to use for this command (see `photosift models list`)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, json_help="print machine-readable JSON"):
        sp.add_argument("--json", action="store_true", help=json_help)

    sp = sub.add_parser("index", help="add folders to the library and index them (resumable)")
    sp.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    sp.add_argument("--poll", action="store_true", help="watch by polling (for network shares)")
    sp.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    sp.add_argument("--int8", action="store_true", help="use the int8-quantised image tower if the model has one")
    common(sp)
    sp.set_defaults(func=cmd_index)

    def filters(sp):
        sp.add_argument("-k", type=int, default=20, help="number of results (default 20)")
        sp.add_argument("--exclude", action="append", metavar="TEXT", help="negative term (repeatable); or write -word in the query")
        sp.add_argument("--folder", action="append", help="only photos under this folder (repeatable)")
        sp.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="taken on or after")
        sp.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="taken on or before")
        sp.add_argument("--type", action="append", metavar="EXT", help="file type, e.g. jpg, heic (repeatable)")
        common(sp)

    sp = sub.add_parser("search", help='search by text, e.g. photosift search "kids on a red slide -night"')
    sp.add_argument("text", help="what to look for; -word or -\"some words\" excludes")
    sp.add_argument("--like", action="append", metavar="PHOTO", help="also similar to this photo (repeatable)")
    filters(sp)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("similar", help="photos similar to a given photo")
    sp.add_argument("photo", help="a photo file (indexed or not)")
    sp.add_argument("--text", help="mix in a text query")
    filters(sp)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("status", help="counts, folders (offline ones too), files that failed and why")
    sp.add_argument("--limit", type=int, default=50, help="how many failures to list")
    common(sp)
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("models", help="list, download, import, quantize or choose models")
    sp.add_argument("action", choices=["list", "download", "import", "quantize", "use"])
    sp.add_argument("key", nargs="?", help="model key (download, use) or folder (import)")
    common(sp)
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("bench", help="benchmarks: pipeline, int8, query, rescan, quality")
    from .bench import add_arguments

    add_arguments(sp)
    sp.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _HELD:
            return args.func(args)
    except PhotosiftError as e:
        print(f"photosift: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nphotosift: interrupted; nothing committed was lost", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
