"""The engine's fine-tuning methods (SigLIT: engine.finetune.job runs training in a child process).

A mixin of :class:`engine.service.server.Engine` (which finds handlers by their ``m_`` names).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelNotAvailable, QueryError

if TYPE_CHECKING:
    from .jobs import Job


class TrainMethods:
    # -- fine-tuning (SigLIT; engine.finetune.job runs it in a child process) ----------------------

    def m_train_start(self, vocab: str | None = None, folders: str | None = None, base: str | None = None,
                      tune: str | None = None, seed: int | None = None, max_steps: int | None = None) -> dict:  # fmt: skip
        from ..finetune.job import TrainRequest, train
        from ..models.hub import full_registry, local_model_folder

        if bool(vocab) == bool(folders):
            raise QueryError("train_start needs either 'vocab' or 'folders'")
        spec = full_registry(self.settings).get(base) if base else self.library().spec
        if local_model_folder(spec, self.settings) is None:
            raise ModelNotAvailable(f"model {spec.key!r} is not on this machine yet: download or import it first")
        if folders:
            from ..finetune.sources import label_folders
            from ..index.scan import normalize_folder

            label_folders(Path(folders))
            root = normalize_folder(folders)
            known = [f["path"] for f in self.library().db.folders()]
            if not any(root == k or root.startswith(k.rstrip("/\\") + os.sep) for k in known):
                raise QueryError(f"{folders} is not in the library; add it (and let it index) first")
            folders = root
        req = TrainRequest(base=spec.key, vocab=vocab, folders=folders, tune=tune, seed=seed, max_steps=max_steps)

        from .jobs import PROGRESS_EVERY_S

        def fn(job: Job) -> dict:
            started = time.monotonic()
            total = {"steps": max_steps or 0}

            def cb(rec: dict) -> None:
                if rec.get("event") == "data":
                    total["steps"] = rec.get("max_steps") or total["steps"]
                if rec.get("event") not in ("step", "eval"):
                    return
                now = time.monotonic()
                step = int(rec["step"])
                rate = step / max(1e-6, now - started)
                left = max(0, total["steps"] - step)
                job.progress = dict(done=step, total=max(total["steps"], step), unit="steps", embedded=0,
                                    reused=0, failed=0, rate=round(rate, 3),
                                    eta_s=round(left / rate, 1) if rate > 0 else None,
                                    elapsed_s=round(now - started, 3), current=None, paused=False, train=rec)  # fmt: skip
                if rec["event"] == "eval" or now - job.last_sent >= PROGRESS_EVERY_S:
                    job.last_sent = now
                    self.emit("progress", job.progress, job.id)

            res = train(self.settings, req, progress=cb, cancel=job.run_cancel)
            return dict(kind="train", cancelled=False, run=res["run"], key=res["key"], metrics=res["metrics"])

        job = self._new_job("train", fn, model=spec.key)
        threading.Thread(target=self._run_job, args=(job,), name=f"train-{job.id}", daemon=True).start()
        return dict(job=job.id)

    def m_train_accept(self, run: str) -> dict:
        from ..finetune.job import accept

        return dict(model=self._model_info(accept(self.settings, run), False))

    def m_train_discard(self, run: str) -> dict:
        from ..finetune.job import discard

        discard(self.settings, run)
        return {"discarded": True}

    def m_train_pending(self) -> dict:
        from ..finetune.job import pending

        return {"runs": pending(self.settings)}
