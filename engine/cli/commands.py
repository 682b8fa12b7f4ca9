"""`photosift` command line. Library code raises typed errors; this module decides what users see."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from .. import __version__
from ..errors import PhotosiftError
from .common import EXIT_CANCELLED, EXIT_ERROR, HELD, Bar, open_library


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        print(json.dumps([dict(image_id=h.image_id, score=round(h.score, 5), path=h.path,
                               online=h.online, taken_at=h.info.get("taken_at"),
                               twins=h.info.get("twins", [])) for h in hits],
                         ensure_ascii=False, indent=1))  # fmt: skip
        return
    if not hits:
        print("no results")
    for n, h in enumerate(hits, 1):
        off = "" if h.online else "  (offline)"
        # the RAW of a RAW + JPEG pair (or the JPEG of a RAW shown on its own)
        twins = "".join(f"  + {Path(t).name}" for t in h.info.get("twins", []))
        print(f"{n:3d}  {h.score:6.3f}  {h.path}{off}{twins}")


def cmd_index(args) -> int:
    lib = open_library(args)
    folders = [lib.add_folder(d, poll=args.poll) for d in args.dirs]
    cancel = threading.Event()
    old = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # first Ctrl-C: stop after this batch
    bar = Bar(sys.stderr.isatty() or args.progress)
    try:
        rep = lib.scan(folders, progress=bar, cancel=cancel)
        # (known only once the image tower ran: a rescan with nothing new never loads it)
        stale_int8 = bool(rep.embedded) and lib.settings.precision != "fp32" and lib.model().int8_stale
    finally:
        bar.close()
        signal.signal(signal.SIGINT, old)
        lib.close()
    if stale_int8:
        print(f"note: the int8 image tower of {lib.spec.key!r} was made with other quantiser settings, "
              f"so the fp32 one was used; run `photosift models quantize {lib.spec.key}` to remake it",
              file=sys.stderr)  # fmt: skip
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
    from ..search import Filters

    return Filters(
        folders=[str(Path(f).expanduser().resolve()) for f in args.folder or []],
        date_from=args.date_from, date_to=args.date_to, exts=args.type or [],
    )  # fmt: skip


def cmd_search(args) -> int:
    """`search TEXT [--like PHOTO]` and `similar PHOTO [--text TEXT]`: one query, two spellings."""
    from ..search import Query

    if args.command == "similar":
        text, like = args.text or "", [args.photo]
    else:
        text, like = args.text, args.like or []
    lib = open_library(args, one_shot=True)  # one query: load fast, run once
    try:
        from .tags import search_tags

        filters = _filters(args)
        filters.tags = search_tags(args, lib)
        if filters.tags and not text.strip() and not like:  # browse by tag: best-scored first
            return _print_tagged(lib, filters.tags, args)
        q = Query(text=text, like=like, negatives=args.exclude or [], filters=filters, k=args.k)
        _print_hits(lib.search(q), args.json)
    finally:
        lib.close()
    return 0


def _print_tagged(lib, tags, args) -> int:
    from ..search import Hit
    from ..tags.tagging import tagged_image_ids

    tg = lib.tagger()
    hits, _ = tg.photos(*tags[0], "tagged", 10**9, 0)
    keep = tagged_image_ids(lib.db, tg.model_key, tags) & lib.db.filtered_image_ids(
        folders=args.folder and [str(Path(f).expanduser().resolve()) for f in args.folder],
        date_from=args.date_from, date_to=args.date_to, exts=args.type,
    )  # fmt: skip
    hits = [h for h in hits if h["image_id"] in keep][: args.k]
    info = lib.db.describe_images([h["image_id"] for h in hits])
    _print_hits([Hit(h["image_id"], h["score"] or 0.0, h["path"], h["online"], info.get(h["image_id"], {}))
                 for h in hits], args.json)  # fmt: skip
    return 0


def cmd_status(args) -> int:
    lib = open_library(args)
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
    from ..models.hub import full_registry, import_model_folder, local_model_folder
    from ..settings import Settings

    settings = Settings.load(args.data_dir)
    if args.action == "list":
        rows = []
        for s in full_registry(settings):
            here = local_model_folder(s, settings)
            rows.append(dict(key=s.key, name=s.name, family=s.family, embed_dim=s.embed_dim,
                             size_mb=s.size_mb, speed=s.speed_class, license=s.license,
                             here=bool(here), active=s.key == settings.model))  # fmt: skip
            rows[-1]["recommended"] = s.recommended
        rows.sort(key=lambda r: not r["recommended"])  # the one to start with first (stable)
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            for r in rows:
                mark = "*" if r["active"] else " "
                here = "here" if r["here"] else "download"
                size = f"{r['size_mb']:.0f} MB" if r["size_mb"] else "?"
                rec = "  [recommended]" if r["recommended"] else ""
                print(f"{mark} {r['key']:28s} {here:9s} {size:>8s}  {r['speed'] or '':7s} {r['license']:12s} {r['name']}{rec}")
        return 0
    if args.action == "download":
        if not args.key:
            raise SystemExit("models download needs a model key (see `photosift models list`)")
        from ..models.hub import DownloadProgress, fetch_model

        tty = sys.stderr.isatty()

        def show(p: DownloadProgress):
            if tty:  # one line, rewritten: whole-download MB, and the file in hand
                tot = f" of {p.total / 1e6:,.1f}" if p.total else ""
                sys.stderr.write(f"\r\033[Kdownloading {args.key}: {p.done / 1e6:,.1f}{tot} MB ({p.file})")

        try:
            folder = fetch_model(full_registry(settings).get(args.key), settings, progress=show)
        finally:
            if tty:
                sys.stderr.write("\n")
        print(f"model {args.key} is ready in {folder}")
        return 0
    if args.action == "import":
        if not args.key:
            raise SystemExit("models import needs a folder")
        spec = import_model_folder(Path(args.key), settings, key=args.as_key)
        print(f"imported model {spec.key} ({spec.name})")
        return 0
    if args.action == "quantize":
        if not args.key:
            raise SystemExit("models quantize needs a model key")
        import shutil

        from ..models.quantize import quantize_folder
        from ..models.registry import resources_dir

        spec = full_registry(settings).get(args.key)
        folder = local_model_folder(spec, settings)
        if folder is None:
            raise SystemExit(f"model {args.key} is not here yet; download or import it first")
        if resources_dir() in folder.parents:  # bundled: never write into the app's own files
            dest = settings.models_dir / spec.key
            shutil.copytree(folder, dest, dirs_exist_ok=True)
            folder = dest
        quantize_folder(folder)
        print(f"wrote {folder / 'image.int8.onnx'}; it is used where the CPU has VNNI, or with --int8 "
              f"(\"precision\": \"int8\" in settings.json)")
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
    from ..bench import main as bench_main

    return bench_main(args)


def _pct(x) -> str:
    return "  -" if x is None else f"{100 * x:3.0f}%"


def print_train_report(res: dict) -> None:
    """The before/after table a person reads before keeping a fine-tuned model."""
    m = res["metrics"]
    print(f"\n{'label':24s} {'val photos':>10s}  {'AP before -> after':>19s}  "
          f"{'recall@' + str(m['threshold']) + ' before -> after':>26s}")  # fmt: skip
    for lab, r in m["labels"].items():
        print(f"{lab[:24]:24s} {r['val_positives']:4d}/{r['val_positives'] + r['val_negatives']:<5d}  "
              f"{r['ap_before']:8.3f} -> {r['ap_after']:6.3f}  "
              f"{_pct(r['recall_before']):>14s} -> {_pct(r['recall_after'])}")  # fmt: skip
    print(f"{'mean AP':24s} {'':10s}  {m['map_before']:8.3f} -> {m['map_after']:6.3f}")
    g = m.get("general")
    if g:
        agree = next((v for k, v in g.items() if k.endswith("_agreement")), None)
        line = f"general knowledge: {g['queries']} queries outside your labels"
        if agree is not None:
            line += f", {100 * agree:.0f}% of their top results unchanged"
        if "map_before" in g:
            line += f", mAP {g['map_before']:.3f} -> {g['map_after']:.3f}"
        print(line)
    print(f"trained {m['steps']} steps (best at {m['best_step']}) in {m['train_s']:.1f} s on "
          f"{m['n_train']} photos, checked on {m['n_val']}; {m['device']}")  # fmt: skip


def cmd_train(args) -> int:
    """Fine-tune the text side on a vocabulary's confirmed tags or a folder per label."""
    from ..finetune.job import TrainRequest, accept, discard, train
    from ..models.hub import local_model_folder

    lib = open_library(args)
    try:
        base = lib.spec
        if local_model_folder(base, lib.settings) is None:
            raise SystemExit(f"model {base.key} is not here yet; download or import it first")
        if args.folders:
            from ..finetune.sources import label_folders

            label_folders(args.folders)  # refuse a folder without label folders before indexing it
            root = lib.add_folder(args.folders)
            bar = Bar(sys.stderr.isatty())
            try:
                rep = lib.scan([root], progress=bar)  # indexing decodes photos; training will not
            finally:
                bar.close()
            if rep.embedded:
                print(f"indexed {rep.embedded} new photos of {args.folders}")
        settings = lib.settings
    finally:
        lib.close()
    req = TrainRequest(base=base.key, folders=str(Path(args.folders).expanduser().resolve()) if args.folders else None,
                       vocab=args.vocab, tune=args.tune, seed=args.seed, max_steps=args.max_steps,
                       smoke=args.smoke)  # fmt: skip
    cancel = threading.Event()
    old = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    show = sys.stderr.isatty() or args.progress
    state = {"map": None}

    def progress(rec: dict) -> None:
        ev = rec.get("event")
        if ev == "data" and not args.json:
            print(f"training {base.key} on {rec['photos']} photos, {len(rec['labels'])} labels "
                  f"({rec['source']})")  # fmt: skip
            for n in rec.get("notes", []):
                print(f"  note: {n}")
        elif ev in ("step", "eval") and show:
            if "val_map" in rec:
                state["map"] = rec["val_map"]
            vm = "" if state["map"] is None else f" validation mAP {state['map']:.3f}"
            loss = f" loss {rec['loss']:.4f}" if "loss" in rec else ""
            sys.stderr.write(f"\rstep {rec['step']}{loss}{vm}   ")
            sys.stderr.flush()
        elif ev == "exporting" and show:
            sys.stderr.write("\nexporting the text tower to ONNX and checking it against torch\n")

    try:
        res = train(settings, req, progress=progress, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, old)
        if show:
            sys.stderr.write("\n")
    if args.json:
        print(json.dumps(res, indent=1, default=str))
    else:
        print_train_report(res)
    keep = args.yes
    if not keep and not args.json and sys.stdin.isatty():
        keep = input(f"keep the fine-tuned model as {res['key']}? [y/N] ").strip().lower() in ("y", "yes")
    if keep:
        spec = accept(settings, res["run"])
        print(f"registered model {spec.key}; switch to it with `photosift models use {spec.key}` "
              f"(no re-indexing: it shares the image vectors of {base.key})")  # fmt: skip
    else:
        discard(settings, res["run"])
        print("discarded; the model was not changed")
    return 0


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
    prec = sp.add_mutually_exclusive_group()
    prec.add_argument("--int8", action="store_true",
                      help="use the int8 image tower whenever the model has one (default: where the CPU has VNNI)")
    prec.add_argument("--fp32", action="store_true", help="use the fp32 image tower (default: int8 where the CPU has VNNI)")
    common(sp)
    sp.set_defaults(func=cmd_index)

    def filters(sp):
        sp.add_argument("-k", type=int, default=20, help="number of results (default 20)")
        sp.add_argument("--exclude", action="append", metavar="TEXT", help="negative term (repeatable); or write -word in the query")
        sp.add_argument("--folder", action="append", help="only photos under this folder (repeatable)")
        sp.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="taken on or after")
        sp.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="taken on or before")
        sp.add_argument("--type", action="append", metavar="EXT", help="file type, e.g. jpg, heic (repeatable)")
        sp.add_argument("--tag", action="append", metavar="TAG", help="only photos with this tag, VOCABULARY/LABEL (repeatable)")
        common(sp)

    sp = sub.add_parser("search", help='search by text, e.g. photosift search "kids on a red slide -night"')
    sp.add_argument("text", nargs="?", default="", help="what to look for; -word or -\"some words\" excludes (optional with --tag)")
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

    sp = sub.add_parser(
        "models", help="list, download, import, quantize or choose models",
        description="Models. `import FOLDER` takes a photosift model folder, or a copy of an "
        "immich-app, transformers.js (Xenova, onnx-community) or rclip model repo as it comes "
        "from the hub (e.g. `hf download immich-app/ViT-B-32__openai --local-dir ViT-B-32__openai`).",
    )  # fmt: skip
    sp.add_argument("action", choices=["list", "download", "import", "quantize", "use"])
    sp.add_argument("key", nargs="?", help="model key (download, use, quantize) or folder (import)")
    sp.add_argument("--as", dest="as_key", metavar="KEY",
                    help="import: the registry model the folder holds, where its name does not say")  # fmt: skip
    common(sp)
    sp.set_defaults(func=cmd_models)

    from .tags import add_commands

    add_commands(sub, common)  # vocab ..., tag ...

    from ..bench import BENCHES, add_arguments

    sp = sub.add_parser("bench", help="benchmarks: " + ", ".join(BENCHES))

    add_arguments(sp)
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("train", help="fine-tune the text side on your tags or label folders (SigLIT)")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--vocab", metavar="NAME", help="a tag vocabulary: learn from its confirmed and rejected tags")
    src.add_argument("--folders", type=Path, metavar="DIR", help="a folder with one sub-folder of photos per label")
    sp.add_argument("--tune", help="what trains: last:K (default last:2), lora:R or full")
    sp.add_argument("--seed", type=int, help="random seed (default 0): same data + seed, same model")
    sp.add_argument("--max-steps", type=int, help="upper bound on steps (early stopping usually ends sooner)")
    sp.add_argument("--yes", action="store_true", help="keep the result without asking")
    sp.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    sp.add_argument("--progress", action="store_true", help="show progress even when not on a terminal")
    common(sp)
    sp.set_defaults(func=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with HELD:
            return args.func(args)
    except PhotosiftError as e:
        print(f"photosift: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nphotosift: interrupted; nothing committed was lost", file=sys.stderr)
        return EXIT_CANCELLED

