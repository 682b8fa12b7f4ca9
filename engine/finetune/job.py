"""Fine-tuning as the engine sees it: a child process, a candidate, accept or discard.

Training needs torch, which the engine never imports, and it must be stoppable at any
instant. So it runs as a child process (``python -m training.finetune.job``) that reads
the library database read-only and streams JSON lines; this module starts it, turns
its lines into progress callbacks, and cancels by terminating it.

Everything a run writes lives in its run folder, ``<data_dir>/training/<run id>/``:
the child's log and, once training, export and parity check have all finished, the
candidate model folder ``candidate/``. Nothing appears among the models until the user
accepts: ``accept`` renames the candidate into the models folder (one ``os.replace`` on
the same file system), ``discard`` deletes the run folder. A cancelled or failed run
leaves no run folder behind; one whose engine was killed (the child notices and stops) is
removed when the next engine starts (``sweep_unfinished``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import child
from ..errors import Cancelled, ModelError, PhotosiftError, TrainingDataError
from ..models.registry import MODEL_FILE, ModelSpec, load_spec
from ..settings import Settings

CHILD_MODULE = "training.finetune.job"
FROZEN_ROLE = "--train-job"  # packaging/photosift_entry.py: the frozen bundle's training child


def child_command(python: str | None = None) -> list[str]:
    """How to start the training child: ``python -m training.finetune.job`` from source; the
    installed app's own executable in its training role when frozen (no ``-m`` there)."""
    return child.child_command(CHILD_MODULE, FROZEN_ROLE, python)


class TrainingFailed(PhotosiftError):
    """The training process failed; the message says why."""


@dataclass
class TrainRequest:
    """What to train: a base model and one data source, plus optional settings."""

    base: str
    folders: str | None = None
    vocab: str | None = None
    tune: str | None = None
    seed: int | None = None
    max_steps: int | None = None
    smoke: bool = False
    device: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        if bool(self.folders) == bool(self.vocab):
            raise TrainingDataError("train from either a folder of label folders or a vocabulary")
        a = ["--base", self.base]
        a += ["--folders", str(self.folders)] if self.folders else ["--vocab", str(self.vocab)]
        for flag, v in (("--tune", self.tune), ("--seed", self.seed), ("--max-steps", self.max_steps),
                        ("--device", self.device)):  # fmt: skip
            if v is not None:
                a += [flag, str(v)]
        if self.smoke:
            a.append("--smoke")
        return a + list(self.extra_args)


def runs_dir(settings: Settings) -> Path:
    return settings.data_dir / "training"


def train(
    settings: Settings,
    req: TrainRequest,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
    cancel: threading.Event | None = None,
    python: str | None = None,
) -> dict[str, Any]:
    """Run one training to a candidate. Returns the child's ``done`` record plus ``run``
    (the id to accept or discard). Raises TrainingDataError / ModelError / TrainingFailed,
    or Cancelled (the child is terminated and its run folder removed).
    """
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = runs_dir(settings) / run_id
    run_dir.mkdir(parents=True)
    cmd = [*child_command(python), "--data-dir", str(settings.data_dir),
           "--out", str(run_dir), *req.argv()]  # fmt: skip
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    try:
        with open(run_dir / "train.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=child.child_env())
            stop = threading.Event()

            def watch_cancel() -> None:
                while not stop.is_set():
                    if cancel is not None and cancel.wait(0.2):
                        proc.terminate()
                        return
                    if cancel is None:
                        stop.wait(0.2)

            watcher = threading.Thread(target=watch_cancel, name="train-cancel", daemon=True)
            watcher.start()
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    try:
                        rec = json.loads(raw)
                    except ValueError:
                        continue  # not a protocol line; the log has the rest
                    if rec.get("event") == "done":
                        done = rec
                    elif rec.get("event") == "error":
                        error = rec
                    if progress is not None:
                        progress(rec)
                rc = proc.wait()
            finally:
                stop.set()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if cancel is not None and cancel.is_set():
            raise Cancelled("training cancelled; nothing was kept")
        if error is not None:
            cls = {"not_enough_data": TrainingDataError, "model_error": ModelError}.get(
                error.get("code"), TrainingFailed
            )
            raise cls(error.get("message", "training failed"))
        if rc != 0 or done is None:
            tail = (run_dir / "train.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            raise TrainingFailed(
                f"the training process ended with status {rc}: {tail.strip()[-500:]}"
            )
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return {**done, "run": run_id}


def _candidate(settings: Settings, run: str) -> Path:
    if not run or "/" in run or "\\" in run or run.startswith("."):
        raise TrainingDataError(f"no training run {run!r}")
    cand = runs_dir(settings) / run / "candidate"
    if not (cand / MODEL_FILE).is_file():
        raise TrainingDataError(f"no finished training run {run!r} is waiting to be accepted")
    return cand


def pending(settings: Settings) -> list[dict[str, Any]]:
    """Finished runs waiting for accept or discard: run id, model key, metrics and the
    validation history ({step, loss?, val_map} per check) to redraw the training curve."""
    out = []
    d = runs_dir(settings)
    for run in sorted(d.iterdir()) if d.is_dir() else ():
        f = run / "candidate" / MODEL_FILE
        if f.is_file():
            spec = load_spec(f)
            out.append(dict(run=run.name, key=spec.key, name=spec.name,
                            metrics=spec.extra.get("finetune", {}).get("metrics", {})))  # fmt: skip
            out[-1]["history"] = spec.extra.get("finetune", {}).get("history", [])
    return out


def accept(settings: Settings, run: str) -> ModelSpec:
    """Register the candidate of ``run`` as a model (it appears at once, whole)."""
    cand = _candidate(settings, run)
    spec = load_spec(cand / MODEL_FILE)
    dest = settings.models_dir / spec.key
    if dest.exists():
        raise ModelError(f"a model {spec.key!r} already exists in {settings.models_dir}")
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    os.replace(cand, dest)
    shutil.rmtree(cand.parent, ignore_errors=True)
    return spec


def discard(settings: Settings, run: str) -> None:
    """Forget the candidate of ``run``; nothing else changes."""
    cand = _candidate(settings, run)
    shutil.rmtree(cand.parent)


def sweep_unfinished(settings: Settings) -> list[str]:
    """Remove the run folders of trainings that never finished (their engine was killed, and
    its training child with it); a finished candidate stays for accept or discard.

    Call only while holding the data folder's lock (no training of this library can be
    running then). Returns the run ids removed; a folder that cannot be removed is left.
    """
    d = runs_dir(settings)
    gone = []
    for run in sorted(d.iterdir()) if d.is_dir() else ():
        if run.is_dir() and not (run / "candidate" / MODEL_FILE).is_file():
            shutil.rmtree(run, ignore_errors=True)
            if not run.exists():
                gone.append(run.name)
    return gone
