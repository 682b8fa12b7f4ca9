"""The engine's photo methods: ``search``, ``similar``, ``photo_info`` and ``thumbnail`` (with
the thumbnail cache's upkeep).

A mixin of :class:`engine.service.server.Engine` (which finds handlers by their ``m_`` names);
searches are answered by the library the server names for them (the previous model's while a
model switch re-embeds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from ..errors import DecodeError, PhotosiftError, QueryError
from ..store import thumbcache

log = logging.getLogger(__name__)

THUMB_SIZES = (16, 2048)  # up to a preview pane's size: the app shows RAW files through it
PRUNE_EVERY = 256  # new thumbnails between two checks of the cache's size
MAX_K = 1000
MAX_LIKE = 64


class PhotoMethods:
    def _filters(self, f: dict | None):
        from ..search import Filters

        f = f or {}
        return Filters(folders=[os.path.realpath(os.path.expanduser(p)) for p in f.get("folders", [])],
                       date_from=f.get("date_from"), date_to=f.get("date_to"), exts=f.get("exts", []),
                       tags=[(t["vocab"], t["label"]) for t in f.get("tags", [])])  # fmt: skip

    @staticmethod
    def _check_k(k: int) -> int:
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}")
        return k

    @staticmethod
    def _like(items: list) -> list:
        if len(items) > MAX_LIKE:
            raise QueryError(f"at most {MAX_LIKE} example photos")
        return [i if isinstance(i, int) else os.path.abspath(os.path.expanduser(i)) for i in items]

    def _hits(self, q) -> dict:
        with self._search_library() as lib:
            hits = lib.search(q)
        return dict(hits=[dict(image_id=h.image_id, score=round(float(h.score), 6), path=h.path,
                               online=h.online, metadata=h.info) for h in hits])  # fmt: skip

    def m_search(self, text: str = "", like=(), negatives=(), filters=None, k: int = 50,
                 text_weight: float = 1.0, like_weight: float = 1.0, negative_weight: float = 0.5) -> dict:  # fmt: skip
        from ..search import Query

        q = Query(text=text, like=self._like(list(like)), negatives=list(negatives), filters=self._filters(filters),
                  k=self._check_k(k), text_weight=text_weight, like_weight=like_weight,
                  negative_weight=negative_weight)  # fmt: skip
        return self._hits(q)

    def m_similar(self, photo, text: str = "", negatives=(), filters=None, k: int = 50) -> dict:
        from ..search import Query

        q = Query(text=text, like=self._like([photo]), negatives=list(negatives), filters=self._filters(filters),
                  k=self._check_k(k))  # fmt: skip
        return self._hits(q)

    def m_photo_info(self, path: str | None = None, image_id: int | None = None) -> dict:
        from ..photos.decode import read_meta

        db = self.library().db
        if (path is None) == (image_id is None):
            raise QueryError("photo_info needs a path or an image_id (one of them)")
        if image_id is None:
            path = os.path.abspath(os.path.expanduser(path))
            image_id = db.image_id_for_path(path)
            if image_id is None:
                raise QueryError(f"{path} is not in the library (yet)")
        info = db.describe_images([image_id]).get(image_id)
        if info is None:
            raise QueryError(f"no photo with id {image_id} in the library")
        if path is not None and info["path"] != path:  # asked for one of its other paths
            info["other_paths"] = [p for p in [info["path"], *info["other_paths"]] if p != path]
            info["path"] = path
        gps, keywords, orientation = None, [], None
        if info["online"]:
            try:
                meta = read_meta(info["path"])
                gps, keywords, orientation = meta.gps, list(meta.keywords), meta.orientation
            except (DecodeError, OSError):
                pass  # the stored metadata still stands
        tags = []
        with contextlib.suppress(PhotosiftError):  # tags are extra: photo_info answers without them
            tags = [{k: v for k, v in t.items() if k != "tagged"}
                    for t in self.library().tagger().photo_tags(image_id)]  # fmt: skip
        return dict(info, gps=list(gps) if gps else None, keywords=keywords, orientation=orientation, tags=tags)

    def m_thumbnail(self, path: str, size: int = 256) -> dict:
        from PIL import Image

        from ..photos.decode import decode_photo

        if not THUMB_SIZES[0] <= size <= THUMB_SIZES[1]:
            raise QueryError(f"thumbnail size must be between {THUMB_SIZES[0]} and {THUMB_SIZES[1]}")
        path = os.path.abspath(os.path.expanduser(path))
        try:
            st = os.stat(path)
        except OSError as e:
            raise QueryError(f"{path} cannot be read: {e.strerror or e}") from None
        out = thumbcache.thumb_file(self.settings.data_dir, path, st, size)
        if out.is_file():
            try:
                with Image.open(out) as im:
                    thumbcache.mark_used(out)
                    return dict(path=str(out), width=im.width, height=im.height)
            except OSError:
                pass  # a damaged cache file: make it again
        photo = decode_photo(path, target=(size, size))
        im = photo.image
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{threading.get_ident()}.tmp")
        im.save(tmp, "JPEG", quality=85)
        os.replace(tmp, out)  # atomic: a reader never sees half a thumbnail
        if next(self._thumbs_made) % PRUNE_EVERY == PRUNE_EVERY - 1:
            self._pool.submit(self._prune_thumbs)
        return dict(path=str(out), width=im.width, height=im.height)

    def _prune_thumbs(self) -> None:
        """Keep the thumbnail cache within its budget (least recently used go first)."""
        budget = int(self.settings.thumb_cache_mb) * 1024 * 1024
        try:
            removed, freed = thumbcache.prune(self.settings.data_dir, budget)
        except Exception:  # cache housekeeping must never take the engine down
            log.exception("pruning the thumbnail cache failed")
            return
        if removed:
            log.info("thumbnail cache: removed %d old thumbnails (%.1f MB)", removed, freed / 2**20)
