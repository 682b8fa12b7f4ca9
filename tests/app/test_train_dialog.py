"""The fine-tuning dialog against a real engine and the demo model: a folder per label is
indexed, trained from the dialog, judged on its before/after charts, accepted and used
without re-embedding; cancel keeps nothing; too little data is reported as the engine says.
The verdicts and charts are checked on their own first (no engine)."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QColor, QImage

from app.sampledata import label_folders
from app.train_charts import AFTER, VAL, BeforeAfterChart, LossCurve
from app.train_dialog import (
    TrainDialog,
    chart_rows,
    general_verdict,
    labels_verdict,
    recommendation,
    tune_value,
)
from engine.service.client import EngineError
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder
from tests.worldlabels import label_tree

TRAIN_TIMEOUT_MS = 300_000  # the training child imports torch: slow on a busy 2-core machine

METRICS = {
    "labels": {
        "ring": {"ap_before": 0.40, "ap_after": 0.90, "recall_before": 0.0, "recall_after": 0.75},
        "moon": {"ap_before": 0.55, "ap_after": 0.80, "recall_before": 0.25, "recall_after": 0.5},
    },
    "map_before": 0.475,
    "map_after": 0.85,
    "threshold": 0.5,
    "n_val": 12,
    "general": {"queries": 23, "gallery": 40, "top10_agreement": 0.88, "query_cosine": 0.97},
}


# -- no engine -----------------------------------------------------------------------------------


def test_verdicts_say_what_changed():
    assert labels_verdict(METRICS) == (
        "Your labels: mean average precision 47.5 → 85.0 (+37.5 points) on 12 photos "
        "training never saw."
    )
    assert general_verdict(METRICS).startswith(
        "Searches outside your labels: 88% of their top 10 photos are unchanged — general "
        "knowledge is kept"
    )
    low = {"general": {"queries": 5, "top10_agreement": 0.3}}
    assert "changed a lot" in general_verdict(low)
    measured = {"general": {"queries": 30, "map_before": 0.543, "map_after": 0.531}}
    assert general_verdict(measured) == (
        "General knowledge dropped 1.2 points (54.3 → 53.1), measured on 30 searches "
        "outside your labels."
    )
    steady = {"general": {"queries": 30, "map_before": 0.543, "map_after": 0.545}}
    assert "held steady" in general_verdict(steady)
    assert "not checked" in general_verdict({})
    assert "no before/after" in labels_verdict({"map_before": float("nan"), "map_after": 0.5})


def test_recommendation_weighs_gain_against_forgetting():
    assert recommendation(METRICS).startswith("Recommended: keep it.")
    forgot = {**METRICS, "general": {"queries": 9, "top10_agreement": 0.3}}
    assert "other searches changed noticeably" in recommendation(forgot)
    dropped = {**METRICS, "general": {"queries": 9, "map_before": 0.6, "map_after": 0.5}}
    assert "changed noticeably" in recommendation(dropped)
    assert recommendation({**METRICS, "map_after": 0.48}).startswith("It learnt little")


def test_chart_rows_and_tune_values():
    ap, rec = chart_rows(METRICS)
    assert ap == [("ring", 0.40, 0.90), ("moon", 0.55, 0.80)]
    assert rec == [("ring", 0.0, 0.75), ("moon", 0.25, 0.5)]
    ap, _ = chart_rows({"labels": {}, "general": {"map_before": 0.5, "map_after": 0.4}})
    assert ap == [("general knowledge", 0.5, 0.4)]
    assert [tune_value("last", 2), tune_value("lora", 8), tune_value("full", 3)] == [
        "last:2",
        "lora:8",
        "full",
    ]


def _pixels_like(widget, colour: QColor) -> int:
    img: QImage = widget.grab().toImage()
    n = 0
    for y in range(0, img.height(), 2):
        for x in range(0, img.width(), 2):
            c = img.pixelColor(x, y)
            if (
                abs(c.red() - colour.red())
                + abs(c.green() - colour.green())
                + abs(c.blue() - colour.blue())
                < 30
            ):
                n += 1
    return n


def test_charts_draw_their_data(qtbot):
    curve = LossCurve()
    qtbot.addWidget(curve)
    curve.resize(400, 200)
    empty_loss, empty_val = _pixels_like(curve, AFTER), _pixels_like(curve, VAL)
    curve.clear(total_steps=30)
    for step, loss in enumerate([1.2, 0.9, 0.7, 0.6, 0.5, 0.45], start=1):
        curve.add({"step": step * 5, "loss": loss, "val_map": 0.5 + step / 20})
    curve.add({"step": 10, "loss": 9.0})  # an old step again: ignored
    assert len(curve.loss) == 6 and len(curve.val) == 6 and curve.loss[-1] == (30, 0.45)
    assert _pixels_like(curve, AFTER) > empty_loss + 20
    assert _pixels_like(curve, VAL) > empty_val + 10

    chart = BeforeAfterChart("AP")
    qtbot.addWidget(chart)
    chart.resize(400, 150)
    chart.set_rows([("ring", 0.1, 0.2)])
    small = _pixels_like(chart, AFTER)
    chart.set_rows([("ring", 0.1, 0.9)])
    assert _pixels_like(chart, AFTER) > small + 50  # a longer "after" bar
    assert chart.sizeHint().height() > BeforeAfterChart("x").sizeHint().height() - 1


class ScriptedBridge(QObject):
    """EngineBridge's surface, answering from a table (later, on the event loop, as the
    real one does): the dialog's logic against engine answers a test chooses, such as
    vocabularies, which this branch's engine does not have yet."""

    event = Signal(object)
    died = Signal(str)
    ready = Signal(object)
    is_ready = True

    def __init__(self, answers: dict):
        super().__init__()
        self.answers = answers
        self.calls: list[tuple[str, dict]] = []

    def call(self, method, params=None, on_result=None, on_error=None, context=None):
        self.calls.append((method, params or {}))
        answer = self.answers.get(method, {})

        def reply():
            if isinstance(answer, EngineError):
                on_error and on_error(answer)
            else:
                on_result and on_result(answer)

        QTimer.singleShot(0, reply)


IDLE = {"status": {"folders": [{"path": "/photos/labels"}]}, "train_pending": {"runs": []}}


def test_vocabulary_source_and_advanced_settings_reach_train_start(qtbot):
    vocabs = {"vocabularies": [{"name": "my cats", "labels": 2}], "starters": []}
    bridge = ScriptedBridge({**IDLE, "vocab_list": vocabs, "train_start": {"job": "j1"}})
    dlg = TrainDialog(bridge)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.vocabularies == ["my cats"])
    assert dlg.src_vocab.isEnabled() and dlg.src_vocab.isChecked()
    assert dlg.vocab_combo.currentText() == "my cats (2 labels)"
    assert dlg.params() == {"max_steps": 300, "vocab": "my cats"}
    dlg.advanced.setChecked(True)
    dlg.tune_combo.setCurrentIndex(1)  # LoRA
    dlg.tune_n.setValue(4)
    dlg.seed.setValue(7)
    dlg.length_combo.setCurrentIndex(2)
    dlg.start_btn.click()
    qtbot.waitUntil(lambda: dlg.job == "j1")
    assert bridge.calls[-1] == (
        "train_start",
        {"max_steps": 1000, "vocab": "my cats", "tune": "lora:4", "seed": 7},
    )
    assert dlg.pages.currentIndex() == 1
    bridge.event.emit({"event": "progress", "job": "j1", "data": {
        "done": 10, "total": 1000, "unit": "steps", "eta_s": 99.0,
        "train": {"event": "eval", "step": 10, "loss": 0.8, "val_map": 0.6}}})  # fmt: skip
    assert dlg.progress.value() == 10 and dlg.curve.loss == [(10, 0.8)]
    assert "about 1 min 39 s left" in dlg.progress_text.text()
    bridge.event.emit({"event": "progress", "job": "other", "data": {"done": 500, "total": 1000}})
    assert dlg.progress.value() == 10  # another job's progress is not ours
    msg = "too little data: 'Miso' has 3 confirmed photos, needs at least 10"
    bridge.event.emit({"event": "job_failed", "job": "j1",
                       "data": {"code": "training_data", "message": msg}})  # fmt: skip
    assert dlg.pages.currentIndex() == 0 and dlg.setup_msg.text() == msg and dlg.job is None


def test_folders_only_without_vocabularies_and_engine_death(qtbot):
    no = EngineError("unknown_method", "unknown method 'vocab_list'")
    bridge = ScriptedBridge({**IDLE, "vocab_list": no, "train_start": {"job": "j2"}})
    dlg = TrainDialog(bridge)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.folder_combo.count() == 1 and bool(dlg.vocab_note.text()))
    assert not dlg.src_vocab.isEnabled() and dlg.src_folder.isChecked()
    assert "no tag vocabularies" in dlg.vocab_note.text()
    assert dlg.params() == {"max_steps": 300, "folders": "/photos/labels"}
    dlg.start_btn.click()
    qtbot.waitUntil(lambda: dlg.job == "j2")
    assert dlg.pages.currentIndex() == 1
    bridge.died.emit("engine exited with status -9")
    assert dlg.pages.currentIndex() == 0 and "nothing was kept" in dlg.setup_msg.text()
    assert dlg.job is None and dlg.start_btn.isEnabled()


# -- against the engine ------------------------------------------------------------------------


def _open(qtbot, win) -> TrainDialog:
    dlg = win.open_training()
    # vocab_list is not known to this engine (tag vocabularies are another branch's), or it
    # is: either way the dialog settles on a source it can train from.
    qtbot.waitUntil(
        lambda: bool(dlg.vocab_note.text()) or dlg.vocabularies is not None,
        timeout=ENGINE_TIMEOUT_MS,
    )
    return dlg


def _choose_folder(qtbot, dlg: TrainDialog, folder) -> None:
    qtbot.waitUntil(lambda: dlg.folder_combo.count() > 0, timeout=ENGINE_TIMEOUT_MS)
    dlg.src_folder.setChecked(True)
    dlg.folder_combo.setEditText(str(folder))
    assert dlg.start_btn.isEnabled()


def test_too_little_data_is_shown_as_the_engine_says(qtbot, window, tmp_path):
    root = label_tree(tmp_path / "labels", n=4)
    index_folder(qtbot, window, root)
    dlg = _open(qtbot, window)
    if dlg.vocabularies is None:  # an engine without tag vocabularies: folders only
        assert not dlg.src_vocab.isEnabled() and dlg.src_folder.isChecked()
        assert "no tag vocabularies" in dlg.vocab_note.text()
    _choose_folder(qtbot, dlg, root)
    dlg.start_btn.click()
    qtbot.waitUntil(lambda: "needs at least" in dlg.setup_msg.text(), timeout=TRAIN_TIMEOUT_MS)
    assert "'crimson' has 4 photos, needs at least 10" in dlg.setup_msg.text()
    assert dlg.pages.currentIndex() == 0 and dlg.job is None and dlg.start_btn.isEnabled()


@pytest.mark.slow
def test_train_judge_accept_and_switch_without_reembedding(qtbot, window, tmp_path):
    root = label_folders(tmp_path / "kinds", per_label=12)
    index_folder(qtbot, window, root)
    dlg = _open(qtbot, window)
    _choose_folder(qtbot, dlg, root)
    dlg.length_combo.setCurrentIndex(0)
    progress: list[dict] = []
    done: list[dict] = []

    def on_event(ev):
        if ev.get("job") == dlg.job and ev["event"] == "progress":
            progress.append(ev["data"])
        if ev["event"] == "job_done" and (ev.get("data") or {}).get("kind") == "train":
            done.append(ev["data"])

    window.bridge.event.connect(on_event)
    dlg.start({**dlg.params(), "max_steps": 30})
    qtbot.waitUntil(lambda: dlg.pages.currentIndex() == 1, timeout=ENGINE_TIMEOUT_MS)
    qtbot.waitUntil(lambda: bool(done), timeout=TRAIN_TIMEOUT_MS)

    # the bar and the curve followed the job
    assert progress and progress[-1]["unit"] == "steps"
    assert dlg.progress.maximum() == 30 and dlg.progress.value() == progress[-1]["done"]
    assert dlg.curve.val and dlg.curve.val[0][0] == 0  # the untrained model's validation mAP
    assert dlg.curve.loss and all(not math.isnan(v) for _, v in dlg.curve.loss)

    # the result page shows the engine's own numbers
    m = done[0]["metrics"]
    assert dlg.pages.currentIndex() == 2 and dlg.run["run"] == done[0]["run"]
    assert [r[0] for r in dlg.ap_chart.rows] == list(m["labels"]) == ["crimson", "disc", "pair"]
    pair = m["labels"]["pair"]
    assert dlg.ap_chart.rows[2][1:] == (pair["ap_before"], pair["ap_after"])
    assert dlg.recall_chart.rows[0][2] == m["labels"]["crimson"]["recall_after"]
    assert dlg.labels_text.text() == labels_verdict(m)
    assert dlg.general_text.text() == general_verdict(m) and "searches" in dlg.general_text.text()

    # a dialog opened now (the app restarted, say) offers the same run again
    again = TrainDialog(window.bridge)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.pages.currentIndex() == 2, timeout=ENGINE_TIMEOUT_MS)
    assert again.run["run"] == done[0]["run"] and "waiting" in again.result_title.text()
    assert again.ap_chart.rows == dlg.ap_chart.rows
    assert again.final_curve.val == dlg.curve.val  # every validation check came as an event
    again.close()

    # keep it: it is a model now, and switching to it re-embeds nothing
    status: list[dict] = []
    window.statusShown.connect(status.append)
    window.refresh_status()
    qtbot.waitUntil(lambda: bool(status), timeout=ENGINE_TIMEOUT_MS)
    vectors = status[-1]["vectors"]
    accepted: list[dict] = []
    dlg.modelAccepted.connect(accepted.append)
    models = window.open_models()
    dlg.accept_btn.click()
    qtbot.waitUntil(lambda: bool(accepted), timeout=ENGINE_TIMEOUT_MS)
    key = done[0]["key"]
    assert accepted[0]["key"] == key and dlg.use_btn.isVisible()
    qtbot.waitUntil(
        lambda: any(m["key"] == key and m["here"] for m in models.models), timeout=ENGINE_TIMEOUT_MS
    )

    scans: list[dict] = []
    window.bridge.event.connect(
        lambda ev: (
            ev["event"] == "job_done"
            and ev["data"].get("kind") == "scan"
            and scans.append(ev["data"])
        )
    )
    changed: list[dict] = []
    banner: list[str] = []
    dlg.modelChanged.connect(
        lambda m: (changed.append(m), banner.append(window.banner.text.text()))
    )
    dlg.use_btn.click()
    qtbot.waitUntil(lambda: bool(changed) and bool(scans), timeout=ENGINE_TIMEOUT_MS)
    assert changed[0]["key"] == key and "nothing is re-indexed" in banner[0]
    assert scans[-1]["embedded"] == 0  # the same image space: nothing was re-embedded
    status.clear()
    window.refresh_status()
    qtbot.waitUntil(lambda: bool(status) and not status[-1]["jobs"], timeout=ENGINE_TIMEOUT_MS)
    assert status[-1]["vectors"] == vectors
    assert status[-1]["model"]["key"] == key
    qtbot.waitUntil(
        lambda: any(m["key"] == key and m.get("active") for m in models.models),
        timeout=ENGINE_TIMEOUT_MS,
    )


@pytest.mark.slow
def test_cancel_keeps_nothing(qtbot, window, tmp_path):
    root = label_folders(tmp_path / "kinds", per_label=12)
    index_folder(qtbot, window, root)
    dlg = _open(qtbot, window)
    _choose_folder(qtbot, dlg, root)
    dlg.start({**dlg.params(), "max_steps": 100_000})
    qtbot.waitUntil(lambda: dlg.progress.value() >= 1, timeout=TRAIN_TIMEOUT_MS)
    assert dlg.curve.val  # the step-0 check arrived and was drawn
    dlg.cancel_btn.click()
    qtbot.waitUntil(lambda: dlg.pages.currentIndex() == 0, timeout=ENGINE_TIMEOUT_MS)
    assert dlg.setup_msg.text() == "Training cancelled; nothing was kept."
    pending: list[dict] = []
    models: list[dict] = []  # (the two answer in either order: quick calls run side by side)
    window.bridge.call("train_pending", {}, on_result=pending.append)
    window.bridge.call("models_list", {}, on_result=models.append)
    qtbot.waitUntil(lambda: bool(pending and models), timeout=ENGINE_TIMEOUT_MS)
    assert pending[0]["runs"] == []
    assert not any("-ft-" in m["key"] for m in models[0]["models"])


@pytest.mark.slow
def test_train_from_a_vocabulary_of_confirmed_tags(qtbot, window, tmp_path):
    """The user's own answers as the source: a real vocabulary in the real engine, its
    labels confirmed on their photos and rejected on the rest, chosen in the dialog."""
    root = label_folders(tmp_path / "kinds", per_label=12)
    index_folder(qtbot, window, root)
    labels = ["crimson", "disc", "pair"]
    files = {d.name: sorted(str(p) for p in d.glob("*.jpg")) for d in root.iterdir()}
    replies: list[dict] = []

    def ask(method, params):
        replies.clear()
        window.bridge.call(method, params, on_result=replies.append, on_error=replies.append)
        qtbot.waitUntil(lambda: bool(replies), timeout=ENGINE_TIMEOUT_MS)
        assert not isinstance(replies[0], EngineError), replies[0]
        return replies[0]

    ask("vocab_create", {"name": "my kinds", "labels": labels})
    for lab in labels:
        others = [f for name, fs in files.items() if name != lab for f in fs]
        ask("tag_answer", {"vocab": "my kinds", "label": lab, "photos": files[lab],
                           "state": "confirmed"})  # fmt: skip
        ask("tag_answer", {"vocab": "my kinds", "label": lab, "photos": others,
                           "state": "rejected"})  # fmt: skip

    dlg = _open(qtbot, window)
    qtbot.waitUntil(lambda: dlg.vocabularies == ["my kinds"], timeout=ENGINE_TIMEOUT_MS)
    assert dlg.src_vocab.isEnabled() and dlg.src_vocab.isChecked()
    assert dlg.vocab_combo.currentText() == "my kinds (3 labels)"
    assert dlg.start_btn.isEnabled()
    dlg.length_combo.setCurrentIndex(0)
    assert dlg.params()["vocab"] == "my kinds" and "folders" not in dlg.params()
    done: list[dict] = []
    window.bridge.event.connect(
        lambda ev: (
            ev["event"] == "job_done"
            and (ev.get("data") or {}).get("kind") == "train"
            and done.append(ev["data"])
        )
    )
    dlg.start({**dlg.params(), "max_steps": 30})
    qtbot.waitUntil(lambda: dlg.pages.currentIndex() == 1, timeout=ENGINE_TIMEOUT_MS)
    qtbot.waitUntil(lambda: bool(done), timeout=TRAIN_TIMEOUT_MS)

    m = done[0]["metrics"]
    assert list(m["labels"]) == labels
    # 12 confirmed photos per label, split per label: validation holds some of each
    assert all(m["labels"][lab]["val_positives"] >= 1 for lab in labels), m["labels"]
    assert all(m["labels"][lab]["val_negatives"] >= 1 for lab in labels), m["labels"]
    assert dlg.pages.currentIndex() == 2 and dlg.run["run"] == done[0]["run"]
    assert [r[0] for r in dlg.ap_chart.rows] == labels
    assert dlg.labels_text.text() == labels_verdict(m)
    assert "-ft-my-kinds-" in dlg.result_title.text()  # the new model is named after it

    # discarding leaves no model behind, and the answers are still the user's
    dlg.discard_btn.click()
    qtbot.waitUntil(lambda: dlg.pages.currentIndex() == 0, timeout=ENGINE_TIMEOUT_MS)
    assert ask("train_pending", {})["runs"] == []
    assert not any("-ft-" in x["key"] for x in ask("models_list", {})["models"])
    counts = ask("tag_counts", {"vocab": "my kinds"})
    assert counts, "the vocabulary and its tags are still there"
