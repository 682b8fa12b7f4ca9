"""The fine-tuning child process: ``python -m training.finetune.job --data-dir D --base KEY
(--folders DIR | --vocab NAME) --out RUN_DIR [options]``.

The engine (``engine.finetune.job``) starts it, so training never shares a process with
the engine or the app, and cancelling is terminating it. It opens the library
database read-only, builds the training set from stored vectors (no photo is
decoded, no image model runs), trains, evaluates, and writes the candidate model
folder to ``RUN_DIR/candidate`` (renamed into place only when complete).

stdout carries one JSON object per line, nothing else:

    {"event": "data", "photos": N, "labels": [...], "counts": {...}, "fingerprint": ..., "notes": [...]}
    {"event": "step", "step": 7, "loss": 0.41}
    {"event": "eval", "step": 10, "loss": 0.40, "val_map": 0.73}
    {"event": "exporting"}
    {"event": "done", "key": ..., "candidate": RUN_DIR/candidate, "metrics": {...}}
    {"event": "error", "code": "not_enough_data" | "model_error" | "error", "message": ...}

Exit status: 0 done, 2 an error the user can act on (reported as above), 1 a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
CHECKPOINT_FILES = ("open_clip_config.json", "open_clip_model.safetensors")


def _emit(out, obj: dict) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=float) + "\n")
    out.flush()


def _parse(argv):
    from .siglit import FinetuneSettings

    d = FinetuneSettings()
    ap = argparse.ArgumentParser(
        prog="python -m training.finetune.job", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--data-dir", type=Path, required=True, help="the library's data folder")
    ap.add_argument("--base", required=True, help="key of the model to fine-tune")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--folders", type=Path, help="a folder with one sub-folder of photos per label"
    )
    src.add_argument("--vocab", help="a tag vocabulary: its confirmed and rejected tags")
    ap.add_argument(
        "--out", type=Path, required=True, help="run folder; the candidate goes to OUT/candidate"
    )
    ap.add_argument("--key", help="key of the new model (default: <base>-ft-<source>-<date>)")
    ap.add_argument("--tune", default=d.tune, help="full | last:K | lora:R (default %(default)s)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--max-steps", type=int, default=d.max_steps)
    ap.add_argument("--eval-every", type=int, default=d.eval_every)
    ap.add_argument("--patience", type=int, default=d.patience)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--smoke", action="store_true", help="a few steps only (tests)")
    return ap.parse_args(argv)


def base_checkpoint(folder: Path) -> Path:
    """Where the base model's torch weights are: its own folder (open_clip local-dir layout)."""
    from engine.errors import ModelError

    if all((folder / f).is_file() for f in CHECKPOINT_FILES):
        return folder
    raise ModelError(
        f"fine-tuning needs the model's torch weights ({' + '.join(CHECKPOINT_FILES)}) "
        f"in {folder}; this model folder has only its ONNX files"
    )


def run(args, out) -> int:
    from engine.finetune.sources import from_folders, from_vocab
    from engine.models.hub import full_registry, local_model_folder
    from engine.models.tokenizer import Tokenizer
    from engine.settings import Settings
    from engine.store.db import LibraryDB

    from ..demo.pretrain import load_checkpoint
    from .candidate import write_candidate
    from .siglit import FinetuneSettings, finetune

    settings = Settings.load(args.data_dir)
    base = full_registry(settings).get(args.base)
    folder = local_model_folder(base, settings)
    if folder is None:
        from engine.errors import ModelNotAvailable

        raise ModelNotAvailable(f"model {base.key!r} is not on this machine")
    ckpt = base_checkpoint(folder)
    db = LibraryDB(settings.db_path, readonly=True)
    try:
        data = (
            from_folders(db, base, args.folders)
            if args.folders
            else from_vocab(db, base, args.vocab)
        )
    finally:
        db.close()
    data.validate()
    kw = dict(tune=args.tune, lr=args.lr, seed=args.seed, device=args.device, threads=args.threads)
    if args.smoke:
        s = FinetuneSettings.smoke(**kw)
    else:
        s = FinetuneSettings(max_steps=args.max_steps, eval_every=args.eval_every,
                             patience=args.patience, **kw)  # fmt: skip
    data.check_enough(unknown_as_negative=s.unknown_weight > 0)  # refuse before loading torch
    _emit(out, dict(event="data", photos=int(len(data.image_ids)), labels=data.labels,
                    counts=data.counts(), fingerprint=data.fingerprint(), notes=data.notes,
                    source=data.source, max_steps=s.max_steps))  # fmt: skip
    model = load_checkpoint(ckpt)
    tokenize = Tokenizer.from_file(folder / "tokenizer.json", base.tokenizer).encode
    parent = os.getppid()  # an engine that dies (even by kill -9) takes its training with it
    result = finetune(model, tokenize, data, s, progress=lambda rec: _emit(out, rec),
                      cancel=lambda: os.getppid() != parent)  # fmt: skip
    _emit(out, dict(event="exporting"))
    cand = Path(args.out) / "candidate"
    spec = write_candidate(model, base, folder, data, result, cand, key=args.key)
    # Evidence for "no photo was decoded": this process never even loaded the decoder.
    _emit(out, dict(event="done", key=spec.key, name=spec.name, candidate=str(cand),
                    metrics=result.metrics, decoder_loaded="engine.photos.decode" in sys.modules))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    # stdout is for progress lines only: anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    args = _parse(argv)
    from engine.errors import Cancelled, ModelError, PhotosiftError, TrainingDataError

    try:
        return run(args, out)
    except Cancelled:
        import shutil

        shutil.rmtree(args.out, ignore_errors=True)  # the parent is gone: nobody will clean up
        return 130
    except TrainingDataError as e:
        _emit(out, dict(event="error", code="not_enough_data", message=str(e)))
    except ModelError as e:
        _emit(out, dict(event="error", code="model_error", message=str(e)))
    except PhotosiftError as e:
        _emit(out, dict(event="error", code="error", message=str(e)))
    except KeyboardInterrupt:
        return 130
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
