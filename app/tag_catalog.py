"""TagCatalog: the app's copy of the engine's vocabularies, labels and their counts.

One object, shared by the tag browser, the preview's tag list and the vocabulary
editor, so they agree with each other. It asks the engine (``vocab_list``, then
``vocab_get`` per vocabulary) and emits ``changed`` once the whole answer is in; a
refresh asked for while one is on its way supersedes it (its answers are dropped).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class TagCatalog(QObject):
    """Vocabularies (protocol VocabInfo dicts, labels with counts and thresholds) and starters."""

    changed = Signal()
    failed = Signal(str)  # a refresh failed: the engine's message

    def __init__(self, bridge, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.vocabs: list[dict] = []  # VocabInfo, in the engine's order
        self.starters: list[str] = []
        self.loaded = False  # at least one refresh has finished
        self._seq = 0

    # -- asking the engine -------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the engine again; `changed` follows (or `failed`)."""
        if not self.bridge.is_ready:
            return
        self._seq += 1
        seq = self._seq
        self.bridge.call("vocab_list", {}, on_result=lambda r: self._on_list(seq, r),
                         on_error=lambda e: self._on_error(seq, e), context=self)  # fmt: skip

    def _on_list(self, seq: int, r: dict) -> None:
        if seq != self._seq:
            return
        self.starters = list(r.get("starters") or [])
        names = [v["name"] for v in r.get("vocabularies") or []]
        if not names:
            self._done(seq, {})
            return
        got: dict[str, dict] = {}

        def one(info: dict | None, name: str) -> None:
            if seq != self._seq:
                return
            got[name] = info
            if len(got) == len(names):
                self._done(seq, {n: got[n] for n in names if got[n] is not None})

        for n in names:
            self.bridge.call("vocab_get", {"name": n},
                             on_result=lambda res, n=n: one(res["vocab"], n),
                             on_error=lambda e, n=n: one(None, n), context=self)  # fmt: skip

    def _done(self, seq: int, vocabs: dict[str, dict]) -> None:
        if seq != self._seq:
            return
        self.vocabs = list(vocabs.values())
        self.loaded = True
        self.changed.emit()

    def _on_error(self, seq: int, e) -> None:
        if seq == self._seq and e.code != "engine_died":
            self.failed.emit(e.message)

    def set_vocab(self, info: dict) -> None:
        """Take in one vocabulary as an engine call returned it (create/update/import)."""
        for i, v in enumerate(self.vocabs):
            if v["name"] == info["name"]:
                self.vocabs[i] = info
                break
        else:
            self.vocabs.append(info)
        self.loaded = True
        self.changed.emit()

    # -- reading ------------------------------------------------------------------------------

    def vocab(self, name: str) -> dict | None:
        return next((v for v in self.vocabs if v["name"] == name), None)

    def label(self, vocab: str, label: str) -> dict | None:
        v = self.vocab(vocab)
        if v is None:
            return None
        return next((lab for lab in v["label_list"] if lab["name"] == label), None)

    def all_labels(self) -> list[tuple[str, str]]:
        """(vocabulary, label) for every label, in order."""
        return [(v["name"], lab["name"]) for v in self.vocabs for lab in v["label_list"]]
