"""`photosift vocab ...` and `photosift tag ...`: tag vocabularies and tags from the command line.

A tag is written ``VOCABULARY/LABEL``, or just ``LABEL`` when only one vocabulary has it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import PhotosiftError


def _lib(args):
    from .common import open_library

    return open_library(args)


def _out(args, data, text_lines) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False, indent=1, default=str))
    else:
        for line in text_lines:
            print(line)


def _retag(lib, name: str) -> str:
    """Re-tag after a vocabulary change; a missing model leaves the vocabulary saved, untagged."""
    try:
        rep = lib.tagger().run(name)
    except PhotosiftError as e:
        return f"saved; not tagged yet ({e})"
    return f"tagged {rep.photos} photos: {rep.assigned} tags ({rep.added} new, {rep.removed} gone) in {rep.seconds:.2f} s"


def _image_ids(lib, photos: list[str]) -> list[int]:
    from ..tags.vocab import VocabularyError

    out = []
    for p in photos:
        if p.isdigit() and not Path(p).exists():
            out.append(int(p))
            continue
        image_id = lib.db.image_id_for_path(str(Path(p).expanduser().resolve()))
        if image_id is None:
            raise VocabularyError(f"{p} is not in the library (index its folder first)")
        out.append(image_id)
    return out


def cmd_vocab(args) -> int:
    from ..tags import tagstore as S
    from ..tags.tagging import vocab_summary
    from ..tags.vocab import (
        load_starter,
        make_label,
        make_vocabulary,
        read_file,
        starters,
        write_file,
    )

    lib = _lib(args)
    try:
        db = lib.db
        a = args.action
        if a == "list":
            rows = [vocab_summary(sv) for sv in S.load_all(db)]
            _out(args, dict(vocabularies=rows, starters=sorted(starters())),
                 [f"{r['name']}: {r['labels']} labels" for r in rows] or ["no vocabularies yet"]
                 + [f"starters (photosift vocab create NAME --starter KEY): {', '.join(sorted(starters()))}"])  # fmt: skip
            return 0
        if a == "starters":
            _out(args, sorted(starters()), sorted(starters()))
            return 0
        if a == "show":
            sv = S.load(db, args.name)
            try:
                info = lib.tagger().vocab_info(sv.name)
            except PhotosiftError:
                info = dict(
                    vocab_summary(sv), label_list=[dict(name=sl.label.name) for sl in sv.labels]
                )
            lines = [
                f"{info['name']}: {info['labels']} labels; templates: {' | '.join(info['templates'])}"
                + ("" if info.get("auto", True) else "; only confirmed answers carry its labels (--no-auto)")
            ]
            for lab in info["label_list"]:
                extra = ""
                if "threshold" in lab:
                    extra = (f"  threshold {lab['threshold']:.3f} ({lab['threshold_source']}), tagged {lab['tagged']},"
                             f" confirmed {lab['confirmed']}, rejected {lab['rejected']}")  # fmt: skip
                lines.append(f"  {lab['name']}{extra}")
            _out(args, info, lines)
            return 0
        if a == "create":
            labels: list = list(args.labels)
            templates, threshold = args.template, args.threshold
            if args.starter:
                base = load_starter(args.starter)
                labels = [lab.to_json() for lab in base.labels] + labels
                templates = templates or list(base.templates)
                threshold = threshold if threshold is not None else base.threshold
            auto = True if args.auto is None else args.auto
            vocab = make_vocabulary(args.name, labels, templates=templates, threshold=threshold, auto=auto)
            S.create(db, vocab)
            print(
                f"created {vocab.name} with {len(vocab.labels)} labels; {_retag(lib, vocab.name)}"
            )
            return 0
        if a == "add":
            sv = S.update(db, args.name, add=[make_label(x, f"label {x!r}") for x in args.labels])
            print(f"{sv.name}: {len(sv.labels)} labels; {_retag(lib, sv.name)}")
            return 0
        if a == "remove":
            sv = S.update(db, args.name, remove=args.labels)
            print(f"{sv.name}: {len(sv.labels)} labels; {_retag(lib, sv.name)}")
            return 0
        if a == "rename":
            if args.label:
                if len(args.labels) != 1:
                    raise SystemExit("usage: photosift vocab rename VOCAB --label OLD NEW")
                sv = S.update(db, args.name, rename_labels={args.label: args.labels[0]})
            else:
                if len(args.labels) != 1:
                    raise SystemExit("usage: photosift vocab rename VOCAB NEW_NAME")
                sv = S.update(db, args.name, rename=args.labels[0])
            print(f"renamed; {_retag(lib, sv.name)}")
            return 0
        if a == "set":
            if args.auto is None:
                raise SystemExit("usage: photosift vocab set VOCAB --auto | --no-auto")
            sv = S.update(db, args.name, auto=args.auto)
            how = "tags photos automatically" if sv.vocab.auto else "only confirmed answers carry its labels"
            print(f"{sv.name}: {how}; {_retag(lib, sv.name)}")
            return 0
        if a == "delete":
            print(f"deleted {S.delete(db, args.name)}")
            return 0
        if a == "import":
            vocab = read_file(Path(args.name), args.format, name=args.as_name)
            S.create(db, vocab, replace=args.replace)
            print(
                f"imported {vocab.name} with {len(vocab.labels)} labels; {_retag(lib, vocab.name)}"
            )
            return 0
        if a == "export":
            if len(args.labels) != 1:
                raise SystemExit("usage: photosift vocab export VOCAB FILE")
            sv = S.load(db, args.name)
            out = write_file(sv.vocab, Path(args.labels[0]), args.format)
            print(f"wrote {len(sv.labels)} labels to {out}")
            return 0
        raise SystemExit(f"unknown action {a}")
    finally:
        lib.close()


def cmd_tag(args) -> int:
    from ..tags.tagging import resolve_tag

    lib = _lib(args)
    try:
        tg = lib.tagger()
        a = args.action
        if a == "run":
            rep = tg.run(args.tag)
            _out(args, rep.as_dict(), [f"{rep.vocabularies} vocabularies, {rep.labels} labels, {rep.photos} photos: "
                                       f"{rep.assigned} tags ({rep.added} new, {rep.removed} gone) in {rep.seconds:.2f} s"])  # fmt: skip
            return 0
        if a == "counts":
            rows = tg.counts(args.tag)
            _out(args, rows, [f"{r['vocab']}/{r['label']}: {r['tagged']} (auto {r['auto']}, confirmed "
                              f"{r['confirmed']}, rejected {r['rejected']})" for r in rows])  # fmt: skip
            return 0
        if a == "list":
            if args.photo:
                (image_id,) = _image_ids(lib, [args.photo])
                tags = tg.photo_tags(image_id, args.tag, all_labels=args.all)
                _out(args, tags, [_tag_line(t) for t in tags] or ["no tags"])
                return 0
            if not args.tag:
                raise SystemExit(
                    "usage: photosift tag list TAG  or  photosift tag list --photo PHOTO"
                )
            vocab, label = resolve_tag(lib.db, args.tag)
            hits, total = tg.photos(vocab, label, args.state, args.k, 0)
            _out(args, dict(hits=hits, total=total),
                 [f"{total} photos {args.state} {vocab}/{label}"]
                 + [f"{h['score'] if h['score'] is None else round(h['score'], 3):>6}  {h['state']:9s} {h['path']}"
                    for h in hits])  # fmt: skip
            return 0
        if a in ("confirm", "reject", "forget"):
            if not args.tag or not args.photos:
                raise SystemExit(f"usage: photosift tag {a} TAG PHOTO...")
            vocab, label = resolve_tag(lib.db, args.tag)
            state = {"confirm": "confirmed", "reject": "rejected", "forget": "none"}[a]
            r = tg.answer(vocab, label, _image_ids(lib, args.photos), state)
            _out(args, r, [f"{r['answered']} answers recorded; {vocab}/{label} threshold now {r['threshold']:.3f} "
                           f"({r['threshold_source']}); {len(r['entered'])} photos gained the tag, "
                           f"{len(r['left'])} lost it"])  # fmt: skip
            return 0
        if a == "threshold":
            if not args.tag or len(args.photos) != 1:
                raise SystemExit("usage: photosift tag threshold TAG PROBABILITY|auto [--preview]")
            vocab, label = resolve_tag(lib.db, args.tag)
            value = None if args.photos[0] == "auto" else float(args.photos[0])
            r = tg.threshold_change(vocab, label, value, preview=args.preview)
            _out(args, r, [f"{vocab}/{label}: threshold {r['threshold']:.3f} ({r['threshold_source']}), "
                           f"{r['tagged']} photos; {len(r['entered'])} enter, {len(r['left'])} leave"
                           + (" (preview, not saved)" if args.preview else "")])  # fmt: skip
            return 0
        if a == "export-xmp":
            return _export_xmp(lib, tg, args)
        if a == "import-xmp":
            return _import_xmp(lib, args)
        raise SystemExit(f"unknown action {a}")
    finally:
        lib.close()


def _tag_line(t: dict) -> str:
    p = "?" if t["score"] is None else f"{t['score']:.3f}"
    below = " (below threshold)" if t["state"] == "auto" and not t["tagged"] else ""
    return f"{t['vocab']}/{t['label']}: {t['state']}{below}  p={p}  threshold {t['threshold']:.3f}"


def _export_xmp(lib, tg, args) -> int:
    """Write every photo's tags in force as XMP keywords (engine.xmp.tags: sidecars, and the
    photo itself with --embed). Ctrl-C stops after the photo in hand; every file stays whole."""
    from ..xmp import tags as xmptags

    vocab = args.vocab or args.tag
    if args.dry_run:
        rep = xmptags.export_tags(lib, vocab, confirmed_only=args.confirmed_only, dry_run=True)
        plan = rep.dry_run or {}
        lines = []
        for path, d in plan.items():
            line = f"{path}: {', '.join(d['add'])}"
            if d["remove"]:
                line += f" (remove: {', '.join(d['remove'])})"
            lines.append(line)
        _out(args, plan, lines or ["no tags to write"])
        return 0
    rep = _with_cancel_and_bar(args, lambda progress, cancel: xmptags.export_tags(
        lib, vocab, confirmed_only=args.confirmed_only, embed=args.embed, progress=progress,
        cancel=cancel))  # fmt: skip
    text = [f"wrote keywords for {len(rep.sidecars)} photos to XMP sidecars"
            + (f", into {len(rep.embedded)} photo files" if args.embed else "")
            + (f"; {len(rep.failed)} failed" if rep.failed else "")
            + ("; stopped (Ctrl-C): every file written so far is complete" if rep.cancelled else "")]  # fmt: skip
    if rep.raw_not_embedded:
        text.append(f"  {len(rep.raw_not_embedded)} camera RAW files: keywords went to their XMP "
                    "sidecars only; photosift never writes into a RAW file")  # fmt: skip
    text += [f"  {p}: {r}" for p, r in rep.failed[:50]]
    _out(args, dict(rep.as_dict(), failures=[dict(path=p, reason=r) for p, r in rep.failed]), text)
    return 0 if not rep.failed else 1


def _import_xmp(lib, args) -> int:
    """Take keywords of indexed photos (sidecars, embedded XMP, IPTC) in as confirmed tags."""
    from ..xmp import tags as xmptags

    folders = ([args.tag] if args.tag else []) + list(args.photos)
    rep = _with_cancel_and_bar(args, lambda progress, cancel: xmptags.import_tags(
        lib, folders or None, vocab=args.vocab, only_known=args.only_known, progress=progress,
        cancel=cancel))  # fmt: skip
    created = sum(len(v) for v in rep.labels_created.values())
    text = [f"read {rep.total} photos, {rep.with_keywords} with keywords: {rep.confirmed} tags confirmed, "
            f"{rep.already} already confirmed, {created} new labels"
            + "".join(f" ({v}: {', '.join(labs[:10])}{' ...' if len(labs) > 10 else ''})"
                      for v, labs in rep.labels_created.items())
            + ("; stopped (Ctrl-C): what was read is recorded" if rep.cancelled else "")]  # fmt: skip
    if rep.kept_rejections:
        text.append(f"{len(rep.kept_rejections)} keywords name tags you rejected in photosift; "
                    f"your answers stay:")  # fmt: skip
        text += [f"  {p}: {v}/{lab}" for p, v, lab in rep.kept_rejections[:50]]
    text += [f"  skipped keyword {k!r}: {r}" for k, r in rep.skipped[:20]]
    text += [f"  could not read {p}: {r}" for p, r in rep.failed[:50]]
    if rep.retag_error:
        text.append(f"answers saved; not re-tagged yet ({rep.retag_error})")
    _out(args, rep.as_dict(), text)
    return 0 if not rep.failed else 1


def _with_cancel_and_bar(args, work):
    """Run `work(progress, cancel)` with the CLI's progress bar; the first Ctrl-C asks it to stop."""
    import signal
    import threading

    from .common import Bar

    stop = threading.Event()
    old = signal.signal(signal.SIGINT, lambda *_: stop.set())
    bar = Bar(sys.stderr.isatty() or getattr(args, "progress", False))
    try:
        return work(bar, stop.is_set)
    finally:
        bar.close()
        signal.signal(signal.SIGINT, old)


def add_commands(sub, common) -> None:
    """Register `vocab` and `tag` on the main parser's subcommands."""
    sp = sub.add_parser("vocab", help="tag vocabularies: list, show, create, add, remove, rename, delete, import, export",
                        description="Tag vocabularies. Examples: photosift vocab create pets cat dog 'my cat Miso'; "
                                    "photosift vocab create scenes --starter scenes; photosift vocab import labels.csv")  # fmt: skip
    sp.add_argument("action", choices=["list", "starters", "show", "create", "add", "remove", "rename", "set",
                                       "delete", "import", "export"])  # fmt: skip
    sp.add_argument("name", nargs="?", help="vocabulary name (import: the file)")
    sp.add_argument(
        "labels", nargs="*", help="labels (create, add, remove); new name (rename); file (export)"
    )
    sp.add_argument(
        "--starter", help="create: start from this starter vocabulary (see `vocab starters`)"
    )
    sp.add_argument(
        "--template",
        action="append",
        help='create: prompt template with {} (repeatable), e.g. "a photo of a {}."',
    )
    sp.add_argument(
        "--threshold", type=float, help="create: default probability threshold for its labels"
    )
    sp.add_argument("--auto", action=argparse.BooleanOptionalAction, default=None,
                    help="create, set: tag photos automatically (default) or, with --no-auto, let only "
                         "confirmed answers carry its labels (e.g. keywords such as places or years)")  # fmt: skip
    sp.add_argument("--label", help="rename: rename this label instead of the vocabulary")
    sp.add_argument(
        "--format",
        choices=["json", "csv", "txt"],
        help="import/export format (default: from the extension)",
    )
    sp.add_argument("--as", dest="as_name", help="import: name for the vocabulary")
    sp.add_argument(
        "--replace",
        action="store_true",
        help="import: replace a vocabulary of that name (answers kept)",
    )
    common(sp)
    sp.set_defaults(func=_needs_name(cmd_vocab))

    sp = sub.add_parser("tag", help="tags: run, list, confirm, reject, forget, threshold, counts, export-xmp, import-xmp",
                        description="Tags. TAG is VOCABULARY/LABEL, or LABEL when only one vocabulary has it.")  # fmt: skip
    sp.add_argument(
        "action",
        choices=["run", "list", "confirm", "reject", "forget", "threshold", "counts", "export-xmp",
                 "import-xmp"],
    )  # fmt: skip
    sp.add_argument(
        "tag",
        nargs="?",
        help="TAG (list, confirm, reject, forget, threshold), VOCABULARY (run, counts, export-xmp) or "
        "FOLDER (import-xmp; more may follow)",
    )
    sp.add_argument(
        "photos",
        nargs="*",
        help="photos (confirm, reject, forget); PROBABILITY or auto (threshold); more FOLDERs (import-xmp)",
    )
    sp.add_argument("--photo", help="list: the tags of this photo")
    sp.add_argument(
        "--all", action="store_true", help="list --photo: every label, with its probability"
    )
    sp.add_argument("--state", default="tagged", choices=["tagged", "auto", "confirmed", "rejected", "untagged"],
                    help="list: which photos (default: tagged)")  # fmt: skip
    sp.add_argument("-k", type=int, default=50, help="list: how many photos (default 50)")
    sp.add_argument(
        "--preview", action="store_true", help="threshold: show what would change, save nothing"
    )
    sp.add_argument(
        "--dry-run", action="store_true", help="export-xmp: print the keywords, write nothing"
    )
    sp.add_argument(
        "--vocab",
        help="export-xmp: only this vocabulary's tags; import-xmp: match only its "
        "labels and add new keywords to it (default: every vocabulary; new ones go to 'Keywords')",
    )
    sp.add_argument(
        "--confirmed-only",
        action="store_true",
        help="export-xmp: only tags you confirmed (default: automatic ones above threshold too)",
    )
    sp.add_argument(
        "--embed",
        action="store_true",
        help="export-xmp: also write the keywords into the photo files themselves (JPEG: only "
        "their metadata changes); without it photos are never rewritten",
    )
    sp.add_argument(
        "--only-known",
        action="store_true",
        help="import-xmp: only keywords that name an existing label; create no labels",
    )
    sp.add_argument(
        "--progress",
        action="store_true",
        help="export-xmp, import-xmp: show the progress bar even when not on a terminal",
    )
    common(sp)
    sp.set_defaults(func=cmd_tag)


def _needs_name(fn):
    def run(args: argparse.Namespace) -> int:
        if args.action not in ("list", "starters") and not args.name:
            raise SystemExit(f"photosift vocab {args.action} needs a vocabulary name (see --help)")
        return fn(args)

    return run


def search_tags(args, lib) -> list[tuple[str, str]]:
    """`photosift search --tag TAG`: the (vocabulary, label) pairs, tagged under the active model first."""
    if not args.tag:
        return []  # (and a search without tags never imports tagging)
    from ..tags.tagging import resolve_tag

    refs = [resolve_tag(lib.db, t) for t in args.tag or []]
    if refs:
        tg = lib.tagger()
        for v in {v for v, _ in refs}:
            tg.ensure_current(v)
    return refs
