"""The engine's model methods: listing models, switching (the library re-embedded in the
background, the previous vectors answering searches meanwhile), NaFlex patch budgets,
downloads as jobs, and importing a model folder.

A mixin of :class:`engine.service.server.Engine` (which finds handlers by their ``m_`` names).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ..errors import ModelNotAvailable, PhotosiftError, QueryError
from .jobs import PROGRESS_EVERY_S, Job


class ModelMethods:
    def _model_info(self, spec, active: bool | None = None) -> dict:
        from ..models.hub import local_model_folder

        d = dict(key=spec.key, name=spec.name, family=spec.family, embed_dim=spec.embed_dim,
                 size_mb=spec.size_mb, license=spec.license,
                 here=local_model_folder(spec, self.settings) is not None)  # fmt: skip
        if active is not None:
            d["active"] = active
        d["recommended"] = spec.recommended
        if spec.preprocess.resize_mode == "naflex":  # the app offers the patch budget
            from ..models.naflex import BUDGETS

            budget = (self.settings.max_patches or {}).get(spec.key)
            d["max_patches"] = budget or spec.preprocess.max_patches
            d["max_patches_choices"] = list(BUDGETS)
        return d

    def m_models_list(self) -> dict:
        from ..models.hub import full_registry

        try:
            current = self.lib.spec.key if self.lib is not None else self.settings.model
        except PhotosiftError:
            current = self.settings.model
        return dict(models=[self._model_info(s, s.key == current) for s in full_registry(self.settings)])

    def m_use_model(self, key: str) -> dict:
        from ..models.hub import full_registry, local_model_folder

        spec = full_registry(self.settings).get(key)
        if local_model_folder(spec, self.settings) is None:
            # Refused before anything changes: the library keeps searching with the model it has.
            raise ModelNotAvailable(
                f"model {key!r} is not on this machine yet: download or import it first"
            )
        with self._lock:
            # What answers searches while `key` re-embeds (and during the switch itself): an
            # earlier fallback, complete, if a switch was still re-embeding; else the library
            # in use until now.
            earlier = self._fallback
            keep = earlier or self.lib
            self._fallback, self._fallback_job = keep, None
            doomed = [j for j in self._jobs.values()
                      if j.kind in ("scan", "watch") and j.state in ("queued", "running")]  # fmt: skip
        for j in doomed:
            self.m_cancel(j.id)
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        old = self.lib
        self.settings.model = key
        self.settings.save()
        self.model_key = key
        self._open_library()
        rescan = self.ready and self.lib is not None and bool(self.lib.db.folders())
        if keep is not None and not (rescan and self._can_answer_for(keep, spec)):
            keep = None
        job = None
        if self.ready and self.lib is not None:
            self._start_watching()
            if rescan:
                # Queued behind this call (both run on the writer thread): it cannot end before
                # the fallback below is in place.
                job = self._new_scan([], note="model change")
        with self._lock:
            if keep is not None and job is not None:
                self._fallback, self._fallback_job = keep, job.id
            else:
                self._fallback, self._fallback_job = None, None
        for lib in {id(x): x for x in (old, earlier) if x is not None}.values():
            if lib is not keep:
                self._close_when_idle(lib)
        return dict(model=self._model_info(spec, True))

    def _can_answer_for(self, lib, spec) -> bool:
        """Whether `lib` (the previous model) should answer searches while `spec` re-embeds:
        its image space differs from the new one and holds vectors."""
        try:
            space = lib.spec.space
            new_space = self.lib.spec.space  # the new library's, patch budget included
            return space != new_space and self.lib.db.vectors_per_space().get(space, 0) > 0
        except PhotosiftError:
            return False

    def m_set_max_patches(self, key: str, max_patches: int | None = None) -> dict:
        """A NaFlex model's patch budget per photo (null: the registry's). Another budget is
        another image space: for the active model the library is re-embedded in the
        background, with the previous vectors answering searches meanwhile (as use_model)."""
        from ..models.hub import full_registry
        from ..models.naflex import BUDGETS

        spec = full_registry(self.settings).get(key)
        if spec.preprocess.resize_mode != "naflex":
            raise QueryError(f"model {key!r} is not a NaFlex model: it has no patch budget")
        if max_patches is not None and max_patches not in BUDGETS:
            raise QueryError(f"max_patches must be one of {', '.join(map(str, BUDGETS))}, not {max_patches!r}")
        budgets = dict(self.settings.max_patches or {})
        if max_patches is None or max_patches == spec.preprocess.max_patches:
            budgets.pop(key, None)
        else:
            budgets[key] = max_patches
        self.settings.max_patches = budgets
        self.settings.save()
        if self.lib is not None and self.lib.spec.key == key:
            return self.m_use_model(key)
        return dict(model=self._model_info(spec, False))

    def m_download_size(self, key: str) -> dict:
        """What a download of ``key`` costs: the bytes of the files its layout needs, from the
        hub's listing of the repo (one request), or the registry's estimate where the model
        comes some other way."""
        from ..models.hub import full_registry
        from ..models.install import download_plan

        spec = full_registry(self.settings).get(key)
        if spec.source.layout == "photosift" or not spec.source.hf_repo:
            return dict(bytes=int((spec.size_mb or 0) * 1e6), files=0, exact=False)
        plan = download_plan(spec, endpoint=os.environ.get("HF_ENDPOINT") or None)
        return dict(bytes=sum(s or 0 for s in plan.values()), files=len(plan), exact=True)

    def m_download_model(self, key: str, use: bool = False) -> dict:
        from ..models.hub import full_registry, import_model_folder, local_model_folder

        full_registry(self.settings).get(key)  # unknown key: an error reply now, not a failed job

        def fn(job: Job) -> dict:
            started = time.monotonic()

            def cb(p) -> None:
                now = time.monotonic()
                rate = p.done / max(1e-6, now - started)
                eta = (p.total - p.done) / rate if p.total and rate > 0 else None
                job.progress = dict(done=p.done, total=p.total or 0, unit="bytes", embedded=0, reused=0,
                                    failed=0, rate=round(rate, 1), eta_s=None if eta is None else round(eta, 1),
                                    elapsed_s=round(now - started, 3), current=p.file, paused=False)  # fmt: skip
                if now - job.last_sent >= PROGRESS_EVERY_S:
                    job.last_sent = now
                    self.emit("progress", job.progress, job.id)

            folder = self.library().download_model(key, progress=cb, cancel=job.run_cancel)
            spec = full_registry(self.settings).get(key)
            if local_model_folder(spec, self.settings) is None:
                # A ready ONNX folder from the hub lands in the HF cache, where the model
                # lookup does not look: check it and copy it into the models folder.
                import_model_folder(folder, self.settings)
                folder = local_model_folder(spec, self.settings) or folder
            result = dict(kind="download", cancelled=False, folder=str(folder))
            if use:  # e.g. the first real model: real-photo search with no other step
                result["model"] = self._on_writer(lambda: self.m_use_model(key))["model"]
            return result

        job = self._new_job("download", fn, model=key)
        job.state = "queued"
        threading.Thread(target=self._run_job, args=(job,), name=f"download-{job.id}", daemon=True).start()
        return dict(job=job.id)

    def m_import_model(self, folder: str, key: str | None = None) -> dict:
        from ..models.hub import import_model_folder

        spec = import_model_folder(Path(folder), self.settings, key=key)
        return dict(model=self._model_info(spec, False))
