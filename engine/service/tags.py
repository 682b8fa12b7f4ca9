"""The engine's tag methods: vocabularies, tags, and keywords in XMP/IPTC.

A mixin of :class:`engine.service.server.Engine` (which finds handlers by their ``m_`` names); the
work itself is in engine.tags.vocab, engine.tags.tagstore, engine.tags.tagging and engine.xmp.tags. Kept
apart from the engine's core (requests, jobs, library) so each file stays readable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import QueryError

if TYPE_CHECKING:
    from .jobs import Job


class TagMethods:
    # -- vocabularies and tags (engine.tags.vocab, engine.tags.tagstore, engine.tags.tagging) ------------------

    def _tagger(self):
        return self.library().tagger()

    def _image_ids(self, photos: list) -> list[int]:
        db = self.library().db
        out = []
        for p in photos:
            if isinstance(p, int):
                out.append(p)
                continue
            path = os.path.abspath(os.path.expanduser(p))
            image_id = db.image_id_for_path(path)
            if image_id is None:
                raise QueryError(f"{path} is not in the library (yet)")
            out.append(image_id)
        return out

    def _request_progress(self):
        """progress(done, total) for the request being answered: events after a second (engine.service.reqprogress)."""
        from .reqprogress import RequestProgress, current

        rid = current()
        return RequestProgress(lambda data: self.send(dict(event="progress", request=rid, data=data)))

    def _vocab_changed(self, name: str) -> dict:
        tg = self._tagger()
        rep = tg.run(name, progress=self._request_progress())
        return dict(vocab=tg.vocab_info(name), tagged=rep.as_dict())

    def m_vocab_list(self) -> dict:
        from ..library import DEMO_MODEL
        from ..tags import tagstore
        from ..tags.tagging import vocab_summary
        from ..tags.vocab import starters_for

        lib = self.library()
        return dict(vocabularies=[vocab_summary(sv) for sv in tagstore.load_all(lib.db)],
                    starters=starters_for(lib.spec.key, DEMO_MODEL))  # fmt: skip

    def m_vocab_get(self, name: str) -> dict:
        return dict(vocab=self._tagger().vocab_info(name))

    def m_vocab_create(self, name: str, labels=(), templates=None, threshold=None, starter=None,
                       auto: bool = True) -> dict:  # fmt: skip
        from ..tags import tagstore
        from ..tags.vocab import load_starter, make_vocabulary

        if starter is not None:
            base = load_starter(starter)
            labels = [*[lab.to_json() for lab in base.labels], *labels]
            templates = templates if templates is not None else list(base.templates)
            threshold = threshold if threshold is not None else base.threshold
        vocab = make_vocabulary(name, list(labels), templates=templates, threshold=threshold, auto=auto)
        tagstore.create(self.library().db, vocab)
        return self._vocab_changed(vocab.name)

    def m_vocab_update(self, name: str, rename=None, add=(), remove=(), rename_labels=None, edit=(),
                       templates=None, threshold=..., auto=None) -> dict:  # fmt: skip
        from ..tags import tagstore
        from ..tags.vocab import check_templates, make_label

        sv = tagstore.update(
            self.library().db, name, rename=rename,
            add=[make_label(a, f"add[{i}]") for i, a in enumerate(add)], remove=list(remove),
            rename_labels=rename_labels, edit=[make_label(e, f"edit[{i}]") for i, e in enumerate(edit)],
            templates=None if templates is None else check_templates(templates), threshold=threshold,
            auto=auto,
        )  # fmt: skip
        return self._vocab_changed(sv.name)

    def m_vocab_delete(self, name: str) -> dict:
        from ..tags import tagstore

        return dict(deleted=tagstore.delete(self.library().db, name))

    def m_vocab_import(self, path: str, name=None, format=None, replace: bool = False) -> dict:
        from ..tags import tagstore
        from ..tags.vocab import read_file

        vocab = read_file(Path(os.path.expanduser(path)), format, name=name)
        tagstore.create(self.library().db, vocab, replace=replace)
        return self._vocab_changed(vocab.name)

    def m_vocab_export(self, name: str, path: str, format=None) -> dict:
        from ..tags import tagstore
        from ..tags.vocab import write_file

        sv = tagstore.load(self.library().db, name)
        out = write_file(sv.vocab, Path(os.path.expanduser(path)), format)
        return dict(path=str(out), labels=len(sv.labels))

    def m_tag_run(self, vocab=None) -> dict:
        return dict(tagged=self._tagger().run(vocab, progress=self._request_progress()).as_dict())

    def m_tag_threshold(self, vocab: str, label: str, threshold, preview: bool = False) -> dict:
        return self._tagger().threshold_change(vocab, label, threshold, preview=preview)

    def m_tag_answer(self, vocab: str, label: str, photos: list, state: str) -> dict:
        return self._tagger().answer(vocab, label, self._image_ids(photos), state)

    def m_tag_photo(self, photo, vocab=None, all: bool = False) -> dict:  # noqa: A002 -- the protocol's name
        (image_id,) = self._image_ids([photo])
        return dict(tags=[{k: v for k, v in t.items() if k != "tagged"}
                          for t in self._tagger().photo_tags(image_id, vocab, all_labels=all)])  # fmt: skip

    def m_tag_photos(self, vocab: str, label: str, state: str = "tagged", k: int = 200, offset: int = 0) -> dict:
        if offset < 0:
            raise QueryError("offset must not be negative")
        hits, total = self._tagger().photos(vocab, label, state, self._check_k(k), offset)
        return dict(hits=hits, total=total)

    def m_tag_counts(self, vocab=None) -> dict:
        return dict(counts=self._tagger().counts(vocab))

    # -- keywords in XMP/IPTC (engine.xmp.tags) --------------------------------------------------

    def m_tag_export_xmp(self, vocab=None, confirmed_only=False, embed=False) -> dict:
        from ..tags import tagstore

        if vocab is not None:  # an unknown name: an error reply now, not a failed job
            tagstore.load(self.library().db, vocab)

        def fn(job: Job) -> dict:
            from ..xmp.tags import export_tags

            rep = export_tags(self.library(), vocab, confirmed_only=confirmed_only, embed=embed,
                              progress=self._progress_cb(job), cancel=job.run_cancel.is_set)  # fmt: skip
            return rep.as_dict()

        job = self._new_job("tag_export_xmp", fn, prio=2)
        self._queue_job(job)
        return dict(job=job.id)

    def m_tag_import_xmp(self, folders=None, vocab=None, only_known: bool = False) -> dict:
        chosen = [self._known_folder(f) for f in folders] if folders else None

        def fn(job: Job) -> dict:
            from ..xmp.tags import import_tags

            rep = import_tags(self.library(), chosen, vocab=vocab, only_known=only_known,
                              progress=self._progress_cb(job), cancel=job.run_cancel.is_set)  # fmt: skip
            return rep.as_dict()

        job = self._new_job("tag_import_xmp", fn, prio=2)
        self._queue_job(job)
        return dict(job=job.id)
