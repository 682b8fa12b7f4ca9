"""The library as one object: database, active model, ANN cache, scanning and search.

This is what the CLI and the engine server drive. It opens cheaply; the model
is loaded on first use so a window can be up before the model is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError, ModelNotAvailable, PhotosiftError, QueryError
from .index.indexer import Indexer, IndexReport, Progress
from .index.scan import FileTask, normalize_folder, plan_scan, storable
from .models.hub import fetch_model, full_registry, local_model_folder
from .models.quantize import use_int8
from .models.registry import ModelSpec, resources_dir
from .search import Hit, Query, Searcher
from .settings import Settings
from .store.ann import AnnIndex
from .store.db import LibraryDB

DEMO_MODEL = "photosift-demo"
log = logging.getLogger(__name__)


@dataclass
class ScanReport(IndexReport):
    unchanged: int = 0
    offline: list[str] | None = None


def choose_model(settings: Settings) -> ModelSpec:
    """The model to use: the configured one, else the best one already here, else the demo."""
    reg = full_registry(settings)
    if settings.model:
        return reg.get(settings.model)
    here = [s for s in reg if s.key != DEMO_MODEL and _here_not_bundled(s, settings)]
    if here:
        return here[0]
    return reg.get(DEMO_MODEL)


def _here_not_bundled(spec: ModelSpec, settings: Settings) -> bool:
    """A folder for ``spec`` is on this machine and is not one that ships with the app:
    bundled models (the demo and its NaFlex variant) are the fallback, never "the best here"."""
    folder = local_model_folder(spec, settings)
    return folder is not None and resources_dir().resolve() not in folder.resolve().parents


class Library:
    def __init__(self, settings: Settings, *, model_key: str | None = None, one_shot: bool = False):
        """``one_shot``: a command that runs the model once (engine.models.runtime.OnnxModel)."""
        self.settings = settings
        self._one_shot = one_shot
        self._lock = threading.RLock()
        self._local = threading.local()
        self._all_dbs: list[LibraryDB] = []
        self.db  # noqa: B018 -- open (and create or migrate) now, so errors surface here
        self._model_key = model_key
        self._model = None
        self._ann: AnnIndex | None = None
        self._space_id: int | None = None

    @property
    def db(self) -> LibraryDB:
        """This thread's connection: searches run while another thread indexes."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = LibraryDB(self.settings.db_path)
            self._local.db = db
            with self._lock:
                self._all_dbs.append(db)
        return db

    # -- model -----------------------------------------------------------------------------

    @property
    def spec(self) -> ModelSpec:
        if self._model is not None:
            return self._model.spec
        if self._model_key:
            return full_registry(self.settings).get(self._model_key)
        return choose_model(self.settings)

    def model(self):
        """The loaded model (loading it, and its ANN cache, on first use)."""
        with self._lock:
            if self._model is None:
                from .models.runtime import OnnxModel

                spec = self.spec
                folder = local_model_folder(spec, self.settings)
                if folder is None:
                    raise ModelNotAvailable(
                        f"model {spec.key!r} is not downloaded yet; run `photosift models download "
                        f"{spec.key}` or import it with `photosift models import FOLDER`"
                    )
                int8 = use_int8(self.settings.precision, folder)
                budget = (self.settings.max_patches or {}).get(spec.key)  # NaFlex only
                # lazy: a search loads the text tower only, a rescan with nothing new neither
                self._model = OnnxModel(folder, int8=int8, max_patches=budget, lazy=True,
                                        check_int8=self.settings.precision == "auto",
                                        one_shot=self._one_shot)  # fmt: skip
            return self._model

    @property
    def space_id(self) -> int:
        if self._space_id is None:
            spec = self.model().spec
            self._space_id = self.db.space_id(spec.space, spec.embed_dim)
        return self._space_id

    def ann(self) -> AnnIndex:
        with self._lock:
            if self._ann is None:
                spec = self.model().spec
                path = self.settings.ann_dir / f"{_safe(spec.space)}.hnsw"
                self._ann = AnnIndex.open(
                    self.db, self.space_id, spec.embed_dim, path,
                    exact_threshold=self.settings.exact_threshold,
                )  # fmt: skip
            return self._ann

    def download_model(self, key: str, **kw) -> Path:
        return fetch_model(full_registry(self.settings).get(key), self.settings, **kw)

    # -- folders and indexing --------------------------------------------------------------

    def add_folder(self, path: str | Path, *, poll: bool = False) -> str:
        p = normalize_folder(path)
        if not Path(p).is_dir():
            raise QueryError(f"{path} is not a folder")
        if not storable(p):
            raise QueryError(f"{p!r}: the folder's name is not valid UTF-8; rename it to add it")
        for f in self.db.folders():
            if p == f["path"]:
                return p
        self.db.add_folder(p, poll=poll)
        return p

    def remove_folder(self, path: str | Path) -> None:
        p = normalize_folder(path)
        fid = self.db.folder_id(p)
        if fid is None:
            raise QueryError(f"{path} is not one of the library's folders")
        self.db.remove_folder(fid)
        self._gc()

    def _gc(self, grace_s: float = 0.0) -> int:
        removed = self.db.gc_orphans(grace_s)
        if removed and self._ann is not None:
            mine = [i for s, i in removed if s == self._space_id]
            self._ann.remove(mine)
            self._ann.seq = self.db.space_seq(self._space_id)
        return len(removed)

    def scan(
        self,
        folders: list[str] | None = None,
        *,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        grace_s: float = 0.0,
    ) -> ScanReport:
        """Bring the index in line with the folders (all of them by default).

        Photos whose last file went away are forgotten once they have been orphaned for
        `grace_s` seconds (the watcher keeps them a while: a delete + create pair reuses them).
        """
        chosen = None
        if folders:
            wanted = {normalize_folder(f) for f in folders}
            chosen = [f for f in self.db.folders() if f["path"] in wanted]
        plan = plan_scan(self.db, chosen, self.space_id)
        rep = self._indexer().run(plan.todo, progress=progress, cancel=cancel, pause=pause)
        report = ScanReport(**rep.__dict__, unchanged=plan.unchanged, offline=plan.offline)
        if not rep.cancelled:
            # Only after new files are in: a moved photo found its vector under the new path.
            self.db.remove_files(plan.missing)
            report.removed = self._gc(grace_s)
        self.save()
        return report

    def index_files(
        self,
        tasks: list[FileTask],
        *,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
    ) -> IndexReport:
        """Index just these files (the watcher's changes); nothing else is looked at or removed."""
        return self._indexer().run(tasks, progress=progress, cancel=cancel, pause=pause)

    def _indexer(self) -> Indexer:
        return Indexer(
            self.db, self.model(), self.space_id, self.ann(),
            batch_size=self.settings.batch_size, workers=self.settings.workers,
            on_commit=self._tag_new,
        )  # fmt: skip

    def gc(self, grace_s: float = 0.0) -> int:
        """Forget photos that have had no file for at least `grace_s` seconds, with their vectors."""
        return self._gc(grace_s)

    # -- search ----------------------------------------------------------------------------

    def searcher(self) -> Searcher:
        return Searcher(self.db, self.model(), self.ann(), self.space_id,
                        pairs=self.settings.raw_jpeg_pairs)  # fmt: skip

    def search(self, query: Query | str, **kw) -> list[Hit]:
        if isinstance(query, str):
            query = Query(text=query, **kw)
        return self.searcher().search(query)

    # -- tagging -----------------------------------------------------------------------------

    def tagger(self):
        """Tags photos with the library's vocabularies under the active model (engine.tags.tagging)."""
        from .tags.tagging import Tagger

        return Tagger(self.db, self.model(), self.space_id, pairs=self.settings.raw_jpeg_pairs)

    def _tag_new(self, image_ids, vectors) -> None:
        if self.settings.read_keywords:  # keywords set in other programs come in as confirmed tags
            from .xmp.tags import import_for_new_images

            import_for_new_images(self, image_ids)
        # New photos are tagged as they are committed; the cheap check keeps tag-less libraries free.
        if self.db.conn.execute("SELECT 1 FROM vocabularies LIMIT 1").fetchone():
            try:
                self.tagger().tag_new(image_ids, vectors)
            except PhotosiftError:  # never stop indexing: the next re-tag catches these photos up
                logging.getLogger(__name__).exception("could not tag new photos")

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict:
        st = dict(self.db.counts())
        st["folders_detail"] = self.db.folders()
        st["vectors"] = self.db.vectors_per_space()
        try:
            spec = self.spec
            st["model"] = dict(key=spec.key, name=spec.name, here=bool(local_model_folder(spec, self.settings)))
        except ModelError as e:
            st["model"] = dict(error=str(e))
        st["failures_detail"] = self.db.failures()
        return st

    def save(self) -> None:
        if self._ann is not None:
            try:
                self._ann.save()
            except OSError as e:  # a full disk, a read-only folder: the cache is not the truth
                log.warning("could not save the ANN cache (%s); it is rebuilt from the database", e)

    def close(self) -> None:
        self.save()
        if self._model is not None:
            self._model.close()
        with self._lock:
            for db in self._all_dbs:
                db.close()
            self._all_dbs.clear()
        self._local = threading.local()


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
