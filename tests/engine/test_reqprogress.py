"""Progress of long requests that are not jobs (re-tagging on vocab_create and friends)."""

from __future__ import annotations

import io
import json

from engine.library import DEMO_MODEL
from engine.service import protocol as P
from engine.service import reqprogress
from engine.service.reqprogress import RequestProgress
from engine.service.server import Engine
from engine.settings import Settings
from engine.tags import tagging
from tests.engine.test_tagging import lib  # noqa: F401 -- the indexed demo library


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_quick_work_reports_nothing_and_slow_work_is_throttled():
    sent: list[dict] = []
    clock = Clock()
    p = RequestProgress(sent.append, clock=clock)
    p(10, 100)
    clock.t = 0.5
    p(100, 100)  # done within the first second: no bar at all
    assert sent == []
    p = RequestProgress(sent.append, clock=clock)
    for i in range(1, 11):
        clock.t += 0.15
        p(i * 10, 100)
    # from 1 s on, at most one every 0.2 s, and always the last one
    assert [d["done"] for d in sent] == [70, 90, 100]
    assert all(d["unit"] == "photos" and d["total"] == 100 for d in sent)
    for d in sent:
        P.check(d, P.ProgressData, "data")
    assert sent[-1]["eta_s"] == 0


def test_retag_counts_photos_and_finishes_at_the_total(lib, monkeypatch):  # noqa: F811
    from engine.tags import tagstore as S
    from tests.engine.test_tagging import colour_vocab

    monkeypatch.setattr(tagging, "CHUNK", 7)
    S.create(lib.db, colour_vocab("p1"))
    S.create(lib.db, colour_vocab("p2"))
    seen: list[tuple[int, int]] = []
    n = len(lib.tagger().vectors()[0])
    lib.tagger().run(progress=lambda d, t: seen.append((d, t)))
    vocabs = len(S.vocab_names(lib.db))
    assert seen[-1] == (n * vocabs, n * vocabs) and len(seen) > vocabs
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    S.delete(lib.db, "p1")
    S.delete(lib.db, "p2")


def test_vocab_create_sends_progress_on_the_requests_behalf(lib, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setattr(reqprogress, "DELAY_S", 0.0)
    monkeypatch.setattr(reqprogress, "INTERVAL_S", 0.0)
    monkeypatch.setattr(tagging, "CHUNK", 5)
    out = io.BytesIO()
    server = Engine(Settings(data_dir=lib.root / "data"), DEMO_MODEL, out)
    try:
        server._answer(
            "r1", "vocab_create", server.m_vocab_create, {"name": "rp", "labels": ["red"]}
        )
    finally:
        server.close()
    msgs = [json.loads(line) for line in out.getvalue().splitlines()]
    events = [m for m in msgs if m.get("event") == "progress"]
    assert events and all(m["request"] == "r1" and "job" not in m for m in events)
    done = [m["data"]["done"] for m in events]
    assert done == sorted(done) and done[-1] == events[-1]["data"]["total"]
    reply = next(m for m in msgs if m.get("id") == "r1")
    assert reply["result"]["vocab"]["name"] == "rp"
    assert msgs.index(reply) > msgs.index(events[-1])  # the reply comes after its progress
    for m in events:
        P.check(m, P.Event, "event")
