"""The conversion child process: ``python -m training.export.convert open_clip|naflex
--spec MODEL_JSON --weights DIR --out DIR``.

The engine (``engine.models.convert``) starts it, so torch never enters the engine's process:
it turns weights downloaded from the hub into a model folder at OUT, open_clip weights laid out
as on the hub (``training.export.openclip.export_from_pretrained``) or a SigLIP 2 NaFlex
checkpoint (``training.export.naflex.export_from_hf_dir``). ``--spec`` is the model's registry
entry, written out as a model.json.

stdout carries one JSON object, nothing else:

    {"done": OUT}
    {"error": "model_error" | "not_available" | "error", "message": ...}

Exit status: 0 done, 2 an error reported as above, 3 the exporter cannot be imported here
(no training extra), 1 a bug (the traceback is on stderr). It stops when the process that
started it goes away, as the conversion did when it ran inside the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_NOT_HERE = 3  # engine.models.convert.NOT_HERE


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m training.export.convert",
                                 description=__doc__.split("\n\n")[0])  # fmt: skip
    ap.add_argument("kind", choices=("open_clip", "naflex"), help="what the weights are")
    ap.add_argument("--spec", type=Path, required=True, help="the model's registry entry (model.json)")
    ap.add_argument("--weights", type=Path, required=True, help="the downloaded weights' folder")
    ap.add_argument("--out", type=Path, required=True, help="the model folder to write")
    return ap.parse_args(argv)


def _exporter(kind: str):
    if kind == "open_clip":
        from .openclip import export_from_pretrained

        return export_from_pretrained
    from .naflex import export_from_hf_dir

    return export_from_hf_dir


def _stop_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    # stdout is for the one report line only: anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    args = _parse(argv)
    _stop_with_parent()
    from engine.errors import ModelError, ModelNotAvailable, PhotosiftError
    from engine.models.registry import load_spec

    try:
        export = _exporter(args.kind)
    except ImportError as e:
        print(f"cannot convert here: {e}", file=sys.stderr)
        return EXIT_NOT_HERE
    try:
        export(load_spec(args.spec), args.weights, args.out)
    except ModelNotAvailable as e:  # before ModelError: it is one
        out.write(json.dumps({"error": "not_available", "message": str(e)}) + "\n")
    except ModelError as e:
        out.write(json.dumps({"error": "model_error", "message": str(e)}) + "\n")
    except PhotosiftError as e:
        out.write(json.dumps({"error": "error", "message": str(e)}) + "\n")
    else:
        out.write(json.dumps({"done": str(args.out)}) + "\n")
        return 0
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
