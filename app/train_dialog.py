"""The fine-tuning dialog: choose what to learn from, watch it train, keep it or not.

Three pages, one engine ``train`` job:

1. **Set up** — the source (a tag vocabulary, when the engine has ``vocab_list``, or a
   library folder with one sub-folder per label), how long (quick / normal / thorough,
   i.e. a step budget; training stops early once validation stops improving), and,
   under *Advanced*, what to train (last K text layers, LoRA of rank R, everything) and
   the seed. The engine's "too little data" message is shown as it is: it says what
   is needed.
2. **Training** — steps done, time left, the loss curve and validation mAP as they
   come, Cancel (the engine keeps nothing).
3. **Result** — per label average precision and recall at the threshold, before and
   after, on photos training never saw; what happened to searches outside the labels
   (the general-knowledge check) in plain words; Accept (register the model, then
   optionally switch to it: same image space, so nothing is re-embedded) or Discard.
   Finished runs nobody decided on (``train_pending``) come back here when the dialog
   opens again.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .library_panel import fmt_eta
from .train_charts import BeforeAfterChart, LossCurve

# How long: a step budget. Training also stops once validation mAP has not improved for
# a few checks, so "thorough" only costs time when there is still something to learn.
LENGTHS = (("Quick", 100), ("Normal", 300), ("Thorough", 1000))
DEFAULT_LENGTH = 1  # normal: the engine's own default budget
TUNE_MODES = (
    ("last", "Last text layers (recommended)", 2, "layers"),
    ("lora", "LoRA adapters on every text layer", 8, "rank"),
    ("full", "The whole text side", 0, ""),
)
STEADY_POINTS = 0.5  # a change in general-knowledge mAP below this reads "held steady"
MIN_GAIN_POINTS = 2.0  # a label mAP gain below this is not worth a new model
CHARTS_MAX_H = 340  # px of before/after charts shown before they scroll
FORGOT_POINTS = 3.0  # a general-knowledge mAP drop above this is worth a warning


def _ok(v) -> bool:
    return isinstance(v, int | float) and not math.isnan(v)


def _pct(v) -> str:
    return f"{100 * v:.1f}" if _ok(v) else "—"


def tune_value(mode: str, n: int) -> str:
    """The engine's ``tune`` parameter: "last:K" | "lora:R" | "full"."""
    return "full" if mode == "full" else f"{mode}:{max(1, int(n))}"


def labels_verdict(m: dict) -> str:
    """'Your labels: mean average precision 61.0 → 78.4 (+17.4 points) on 10 photos
    training never saw.'"""
    b, a = m.get("map_before"), m.get("map_after")
    if not (_ok(b) and _ok(a)):
        return "Your labels: no before/after numbers (too few held-out photos)."
    d = 100 * (a - b)
    change = (f"+{d:.1f} points" if d >= 0.05 else f"{d:.1f} points" if d <= -0.05
              else "no change")  # fmt: skip
    n = m.get("n_val")
    on = f" on {n} photos training never saw" if n else ""
    return f"Your labels: mean average precision {_pct(b)} → {_pct(a)} ({change}){on}."


def general_verdict(m: dict) -> str:
    """What training did to searches outside the user's labels, in plain words.

    With a measured mean AP (known truth, as in the demo world) the change is in points;
    on a real library it is how much of each outside query's top results stayed put.
    """
    g = m.get("general") or {}
    n = g.get("queries")
    if not g or not n:
        return "General knowledge: not checked (no searches outside your labels to compare)."
    b, a = g.get("map_before"), g.get("map_after")
    if _ok(b) and _ok(a):
        d = 100 * (a - b)
        if abs(d) < STEADY_POINTS:
            how = f"held steady ({_pct(b)} → {_pct(a)})"
        else:
            how = f"{'rose' if d > 0 else 'dropped'} {abs(d):.1f} points ({_pct(b)} → {_pct(a)})"
        return f"General knowledge {how}, measured on {n} searches outside your labels."
    agree = next(
        (v for k, v in g.items() if k.startswith("top") and k.endswith("_agreement")), None
    )
    if not _ok(agree):
        return f"General knowledge: {n} searches outside your labels were checked."
    k = next(k for k in g if k.startswith("top") and k.endswith("_agreement"))[3:-10]
    share = f"{100 * agree:.0f}% of their top {k} photos are unchanged"
    if agree >= 0.8:
        how = "general knowledge is kept"
    elif agree >= 0.5:
        how = "other searches changed somewhat"
    else:
        how = "other searches changed a lot: the model may have forgotten things"
    return f"Searches outside your labels: {share} — {how} ({n} searches checked)."


def recommendation(m: dict) -> str:
    """One sentence: keep it or not, from the label gain and the general-knowledge check."""
    b, a = m.get("map_before"), m.get("map_after")
    if not (_ok(b) and _ok(a)):
        return "There are no before/after numbers to judge it by."
    gain = 100 * (a - b)
    g = m.get("general") or {}
    agree = next(
        (v for k, v in g.items() if k.startswith("top") and k.endswith("_agreement")), None
    )
    gb, ga = g.get("map_before"), g.get("map_after")
    forgot = (_ok(gb) and _ok(ga) and 100 * (gb - ga) > FORGOT_POINTS) or (
        _ok(agree) and agree < 0.5
    )
    if gain < MIN_GAIN_POINTS:
        return ("It learnt little: discarding it is fine. More photos per label, and photos that "
                "are none of them (in “_other”), help.")  # fmt: skip
    if forgot:
        return ("It finds your labels better, but other searches changed noticeably: keep it for "
                "these labels and switch back to the current model for everything else.")  # fmt: skip
    return "Recommended: keep it. It finds your labels better and other searches hardly change."


def chart_rows(m: dict) -> tuple[list, list]:
    """(average-precision rows, recall rows) for the two before/after charts."""
    labels = m.get("labels") or {}
    ap = [(lab, d.get("ap_before"), d.get("ap_after")) for lab, d in labels.items()]
    rec = [(lab, d.get("recall_before"), d.get("recall_after")) for lab, d in labels.items()]
    g = m.get("general") or {}
    if _ok(g.get("map_before")) and _ok(g.get("map_after")):
        ap.append(("general knowledge", g["map_before"], g["map_after"]))
    return ap, rec


class TrainDialog(QDialog):
    """Set up, run and judge one fine-tuning; accept registers the model."""

    modelAccepted = Signal(object)  # ModelInfo of a newly registered model
    modelChanged = Signal(object)  # ModelInfo after switching to it (use_model)

    def __init__(self, bridge, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Fine-tune the model")
        self.resize(760, 640)
        self.bridge = bridge
        self.job: str | None = None  # the train job in flight
        self.run: dict | None = None  # the finished run on the result page: {run, key, metrics}
        self.accepted: dict | None = None  # ModelInfo once accepted
        self.pending: list[dict] = []
        self.vocabularies: list[str] | None = None  # None: the engine cannot list them
        self.last_progress: dict = {}
        self._starting: dict | None = None  # train_start params sent, job not known yet
        self._over: set[str] = set()

        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_setup())
        self.pages.addWidget(self._build_training())
        self.pages.addWidget(self._build_result())
        lay = QVBoxLayout(self)
        lay.addWidget(self.pages, 1)
        bridge.event.connect(self.on_event)
        bridge.died.connect(self._engine_died)
        bridge.ready.connect(lambda _hello: self.refresh())
        self.refresh()

    # -- pages -------------------------------------------------------------------------------

    def _build_setup(self) -> QWidget:
        page = QWidget()
        intro = QLabel(
            "Teach the search model your own labels. Only the text side learns: every photo keeps "
            "its stored vector, so nothing is re-indexed, and the current model stays as it is.",
            wordWrap=True,
        )
        self.pending_box = QGroupBox("Finished trainings waiting for a decision")
        self.pending_combo = QComboBox()
        self.review_btn = QPushButton("Review…")
        self.review_btn.clicked.connect(self._review_selected)
        pl = QHBoxLayout(self.pending_box)
        pl.addWidget(self.pending_combo, 1)
        pl.addWidget(self.review_btn)
        self.pending_box.hide()

        src = QGroupBox("Learn from")
        self.src_vocab = QRadioButton("A tag vocabulary (its confirmed and rejected tags)")
        self.src_folder = QRadioButton("A library folder with one sub-folder per label")
        self.src_group = QButtonGroup(self)
        self.src_group.addButton(self.src_vocab)
        self.src_group.addButton(self.src_folder)
        self.vocab_combo = QComboBox()
        self.vocab_combo.setAccessibleName("Vocabulary")
        self.vocab_note = QLabel(objectName="hint", wordWrap=True)
        self.folder_combo = QComboBox(editable=True)
        self.folder_combo.setAccessibleName("Label folder")
        self.folder_combo.setMinimumContentsLength(30)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_note = QLabel("Each sub-folder's name is a label and its photos are examples of it; "
                             "put photos that are none of them in “_other”. The folder must be in "
                             "the library and indexed.", objectName="hint", wordWrap=True)  # fmt: skip
        frow = QHBoxLayout()
        frow.addWidget(self.folder_combo, 1)
        frow.addWidget(browse)
        sl = QVBoxLayout(src)
        sl.addWidget(self.src_vocab)
        sl.addWidget(self.vocab_combo)
        sl.addWidget(self.vocab_note)
        sl.addWidget(self.src_folder)
        sl.addLayout(frow)
        sl.addWidget(folder_note)
        self.src_folder.setChecked(True)
        self.src_group.buttonToggled.connect(lambda *_: self._update_setup())
        self.folder_combo.currentTextChanged.connect(lambda *_: self._update_setup())

        self.length_combo = QComboBox()
        self.length_combo.setAccessibleName("Training length")
        for name, steps in LENGTHS:
            self.length_combo.addItem(f"{name} (up to {steps} steps)", steps)
        self.length_combo.setCurrentIndex(DEFAULT_LENGTH)

        self.advanced = QGroupBox("Advanced", checkable=True, checked=False)
        self.tune_combo = QComboBox()
        self.tune_combo.setAccessibleName("What to train")
        for mode, text, _n, _unit in TUNE_MODES:
            self.tune_combo.addItem(text, mode)
        self.tune_n = QSpinBox(minimum=1, maximum=64)
        self.tune_n_label = QLabel()
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setAccessibleName("Seed")
        self.tune_combo.currentIndexChanged.connect(self._tune_changed)
        self.seed.setMinimumWidth(110)
        self.tune_n.setMinimumWidth(60)
        trow = QHBoxLayout()
        trow.addWidget(self.tune_combo)
        trow.addWidget(self.tune_n_label)
        trow.addWidget(self.tune_n)
        trow.addStretch(1)
        self.advanced_body = QWidget()  # hidden while "Advanced" is unticked
        al = QFormLayout(self.advanced_body)
        al.setContentsMargins(0, 0, 0, 0)
        al.addRow("Train", trow)
        al.addRow("Seed", self.seed)
        al.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        QVBoxLayout(self.advanced).addWidget(self.advanced_body)
        self._tune_changed()
        self.advanced.toggled.connect(self._advanced_toggled)
        self._advanced_toggled(False)

        length_hint = QLabel("Training stops on its own once it stops improving on photos it "
                             "does not learn from.", objectName="hint")  # fmt: skip
        form = QFormLayout()
        self.length_combo.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        form.addRow("How long", self.length_combo)
        form.addRow("", length_hint)

        self.setup_msg = QLabel(wordWrap=True, objectName="trainMessage")
        self.setup_msg.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.start_btn = QPushButton("Start training")
        self.start_btn.setDefault(True)
        self.start_btn.clicked.connect(self.start)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        brow = QHBoxLayout()
        brow.addStretch(1)
        brow.addWidget(close)
        brow.addWidget(self.start_btn)

        lay = QVBoxLayout(page)
        lay.addWidget(intro)
        lay.addWidget(self.pending_box)
        lay.addWidget(src)
        lay.addLayout(form)
        lay.addWidget(self.advanced)
        lay.addWidget(self.setup_msg)
        lay.addStretch(1)
        lay.addLayout(brow)
        return page

    def _build_training(self) -> QWidget:
        page = QWidget()
        self.train_title = QLabel(objectName="trainTitle", wordWrap=True)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Training progress")
        self.progress.setFormat("%v / %m steps")
        self.progress_text = QLabel(objectName="hint")
        self.curve = LossCurve()
        self.cancel_btn = QPushButton("Cancel training")
        self.cancel_btn.setToolTip("Stop now; nothing is kept")
        self.cancel_btn.clicked.connect(self.cancel)
        self.train_msg = QLabel(wordWrap=True)
        row = QHBoxLayout()
        row.addWidget(self.train_msg, 1)
        row.addWidget(self.cancel_btn)
        lay = QVBoxLayout(page)
        lay.addWidget(self.train_title)
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_text)
        lay.addWidget(self.curve, 1)
        lay.addLayout(row)
        return page

    def _build_result(self) -> QWidget:
        page = QWidget()
        self.result_title = QLabel(objectName="trainTitle", wordWrap=True)
        self.labels_text = QLabel(wordWrap=True)
        self.general_text = QLabel(wordWrap=True, objectName="generalVerdict")
        self.ap_chart = BeforeAfterChart("Average precision, per label")
        self.recall_chart = BeforeAfterChart("Recall at threshold")
        self.charts = QWidget()
        cl = QHBoxLayout(self.charts)
        cl.setContentsMargins(0, 4, 8, 4)
        cl.setSpacing(24)
        cl.addWidget(self.ap_chart, 1, Qt.AlignmentFlag.AlignTop)
        cl.addWidget(self.recall_chart, 1, Qt.AlignmentFlag.AlignTop)
        # Many labels scroll; a few take only the room they need and leave it to the curve.
        self.charts_scroll = QScrollArea(widgetResizable=True)
        self.charts_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.charts_scroll.setWidget(self.charts)
        self.final_curve = LossCurve()
        self.final_curve.setMinimumHeight(150)
        self.recommend_text = QLabel(wordWrap=True, objectName="trainRecommendation")
        f = self.recommend_text.font()
        f.setBold(True)
        self.recommend_text.setFont(f)
        self.result_msg = QLabel(wordWrap=True, objectName="trainMessage")
        self.accept_btn = QPushButton("Keep this model")
        self.accept_btn.setToolTip("Add it to your models; the model you use now is not changed")
        self.discard_btn = QPushButton("Discard")
        self.use_btn = QPushButton("Use it now")
        self.use_btn.setToolTip("Switch searching to the new model (nothing is re-indexed)")
        self.again_btn = QPushButton("Train another…")
        self.accept_btn.clicked.connect(self.accept_run)
        self.discard_btn.clicked.connect(self.discard_run)
        self.use_btn.clicked.connect(self.use_accepted)
        self.again_btn.clicked.connect(lambda: self.show_setup())
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.again_btn)
        row.addStretch(1)
        for b in (close, self.discard_btn, self.accept_btn, self.use_btn):
            row.addWidget(b)
        for label in (self.result_title, self.labels_text, self.general_text, self.recommend_text,
                      self.result_msg):  # fmt: skip
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        lay = QVBoxLayout(page)
        lay.addWidget(self.result_title)
        lay.addWidget(self.labels_text)
        lay.addWidget(self.general_text)
        lay.addWidget(self.charts_scroll, 1)
        lay.addWidget(self.final_curve, 4)
        lay.addStretch(0)  # the room a hidden curve leaves (a pending run's) goes here
        self._result_lay, self._gap = lay, lay.count() - 1
        lay.addWidget(self.recommend_text)
        lay.addWidget(self.result_msg)
        lay.addLayout(row)
        return page

    # -- set-up page ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the engine for vocabularies, library folders and finished runs."""
        self.bridge.call("vocab_list", {}, on_result=self._show_vocabs, on_error=self._no_vocabs,
                         context=self)  # fmt: skip
        self.bridge.call("status", {}, on_result=self._show_folders, on_error=self._error,
                         context=self)  # fmt: skip
        self.bridge.call("train_pending", {}, on_result=lambda r: self._show_pending(r["runs"]),
                         on_error=self._error, context=self)  # fmt: skip

    def _show_vocabs(self, r: dict) -> None:
        # VocabListResult (tagging branch): {"vocabularies": [{"name", "labels", ...}], ...}
        vocabs = r.get("vocabularies") or []
        names = [v["name"] for v in vocabs]
        self.vocabularies = names
        self.vocab_combo.clear()
        for v in vocabs:
            self.vocab_combo.addItem(f"{v['name']} ({v.get('labels', '?')} labels)", v["name"])
        if names:
            self.src_vocab.setChecked(True)
        self.vocab_note.setText("" if names else "No vocabularies yet: make one in the Tags panel "
                                "and confirm some tags first.")  # fmt: skip
        self._update_setup()

    def _no_vocabs(self, e) -> None:
        # An engine without tag vocabularies (unknown_method) still trains from folders.
        self.vocabularies = None
        self.vocab_combo.clear()
        why = ("This engine has no tag vocabularies yet; use a folder of labelled sub-folders."
               if e.code == "unknown_method" else f"Vocabularies could not be listed: {e.message}")  # fmt: skip
        self.vocab_note.setText(why)
        self.src_folder.setChecked(True)
        self._update_setup()

    def _show_folders(self, st: dict) -> None:
        current = self.folder_combo.currentText()
        self.folder_combo.clear()
        self.folder_combo.addItems([f["path"] for f in st.get("folders", [])])
        if current:
            self.folder_combo.setEditText(current)
        self._update_setup()

    def _browse(self) -> None:
        start = self.folder_combo.currentText() or ""
        folder = QFileDialog.getExistingDirectory(
            self, "A folder with one sub-folder per label", start
        )
        if folder:
            self.folder_combo.setEditText(folder)

    def _tune_changed(self, *_):
        _mode, _text, n, unit = TUNE_MODES[max(0, self.tune_combo.currentIndex())]
        self.tune_n.setVisible(bool(unit))
        self.tune_n_label.setVisible(bool(unit))
        self.tune_n_label.setText(unit)
        if unit:
            self.tune_n.setValue(n)

    def _advanced_toggled(self, on: bool) -> None:
        self.advanced_body.setVisible(on)

    def _update_setup(self) -> None:
        have_vocabs = bool(self.vocabularies)
        self.src_vocab.setEnabled(have_vocabs)
        self.vocab_combo.setEnabled(have_vocabs and self.src_vocab.isChecked())
        self.vocab_combo.setVisible(self.vocabularies is not None)
        self.vocab_note.setVisible(bool(self.vocab_note.text()))
        self.folder_combo.setEnabled(self.src_folder.isChecked())
        ready = self.bridge.is_ready and self.job is None
        has_source = (self.src_vocab.isChecked() and bool(self.vocab_combo.currentText())) or (
            self.src_folder.isChecked() and bool(self.folder_combo.currentText().strip())
        )
        self.start_btn.setEnabled(ready and has_source)

    def _show_pending(self, runs: list[dict]) -> None:
        self.pending = runs
        self.pending_combo.clear()
        for r in runs:
            self.pending_combo.addItem(f"{r.get('name') or r['key']}  ({r['run']})", r["run"])
        self.pending_box.setVisible(bool(runs))
        # Reopened with a run nobody decided on, and nothing else on screen: show it.
        if runs and self.job is None and self.run is None and self.pages.currentIndex() == 0:
            self.show_result(runs[0], pending=True)

    def _review_selected(self) -> None:
        run = self.pending_combo.currentData()
        r = next((p for p in self.pending if p["run"] == run), None)
        if r is not None:
            self.show_result(r, pending=True)

    def show_setup(self, message: str = "") -> None:
        self.run = None
        self.accepted = None
        self.setup_msg.setText(message)
        self.pages.setCurrentIndex(0)
        self._update_setup()
        self.bridge.call("train_pending", {}, on_result=lambda r: self._show_pending(r["runs"]),
                         on_error=self._error, context=self)  # fmt: skip

    def params(self) -> dict:
        """train_start's parameters from what the set-up page says."""
        p: dict = {"max_steps": int(self.length_combo.currentData())}
        if self.src_vocab.isChecked():
            p["vocab"] = self.vocab_combo.currentData()
        else:
            p["folders"] = self.folder_combo.currentText().strip()
        if self.advanced.isChecked():
            mode = self.tune_combo.currentData()
            p["tune"] = tune_value(mode, self.tune_n.value())
            p["seed"] = int(self.seed.value())
        return p

    def start(self, params: dict | None = None) -> None:
        """Start a training (from the set-up page, or with explicit train_start params)."""
        params = params or self.params()
        self.setup_msg.setText("Starting…")
        self.start_btn.setEnabled(False)

        self._starting = params

        def started(r):
            self._begin(r["job"])

        def refused(e):
            self._starting = None
            self.setup_msg.setText(e.message)
            self._update_setup()

        self.bridge.call("train_start", params, on_result=started, on_error=refused, context=self)

    # -- training page --------------------------------------------------------------------------

    def _begin(self, job: str) -> None:
        """A train job started (its reply or its job_started event, whichever came first)."""
        if job == self.job or job in self._over or self._starting is None:
            return
        params, self._starting = self._starting, None
        self.job = job
        self.last_progress = {}
        self.curve.clear(params.get("max_steps", 0))
        self.progress.setRange(0, 0)  # busy until the first step says how many
        self.progress_text.setText("Reading the stored vectors of your photos…")
        self.train_msg.setText("")
        source = params.get("vocab") or params.get("folders")
        self.train_title.setText(f"<b>Training</b> on {_html(source)}")
        self.cancel_btn.setEnabled(True)
        self.pages.setCurrentIndex(1)

    def cancel(self) -> None:
        if self.job is None:
            return
        self.cancel_btn.setEnabled(False)
        self.train_msg.setText("Cancelling…")
        self.bridge.call("cancel", {"job": self.job}, on_error=self._error, context=self)

    def on_event(self, ev: dict) -> None:
        job = ev.get("job")
        name, data = ev["event"], ev.get("data") or {}
        if job is None or job in self._over:
            return
        if name == "job_started" and data.get("kind") == "train" and self._starting is not None:
            self._begin(job)  # it can overtake the reply that names the job
            return
        if job != self.job:
            return
        if name == "progress":
            self.show_progress(data)
        elif name in ("job_done", "job_failed"):
            self._over.add(job)
            self.job = None
            if name == "job_failed":
                # The engine's words, as they are: for too little data they say what is needed.
                self.show_setup(data.get("message", "training failed"))
            elif data.get("cancelled"):
                self.show_setup("Training cancelled; nothing was kept.")
            else:
                self.show_result(data)

    def _engine_died(self, _msg: str = "") -> None:
        # The engine takes its training child with it: that run is gone, nothing was kept.
        if self.job is not None or self._starting is not None:
            self._over.add(self.job or "")
            self.job = self._starting = None
            self.show_setup("The search engine stopped during training, so nothing was kept. "
                            "Start again once it is back.")  # fmt: skip

    def show_progress(self, p: dict) -> None:
        self.last_progress = p
        total, done = int(p.get("total") or 0), int(p.get("done") or 0)
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.curve.total_steps = total
        rec = p.get("train") or {}
        self.curve.add(rec)
        bits = [f"step {done:,} of up to {total:,}"] if total else [f"step {done:,}"]
        if _ok(rec.get("loss")):
            bits.append(f"loss {rec['loss']:.3f}")
        if _ok(rec.get("val_map")):
            bits.append(f"validation mAP {_pct(rec['val_map'])} %")
        if p.get("eta_s") is not None and done < total:
            bits.append(f"about {fmt_eta(p['eta_s'])} left (it may stop sooner)")
        self.progress_text.setText(" · ".join(bits))

    # -- result page ----------------------------------------------------------------------------

    def show_result(self, run: dict, pending: bool = False) -> None:
        """Show a finished run ({run, key, metrics}) with Keep / Discard."""
        self.run = run
        self.accepted = None
        m = run.get("metrics") or {}
        name = run.get("name") or run.get("key")
        lead = (
            "A finished training is waiting for your decision" if pending else "Training finished"
        )
        steps = m.get("steps")
        how = (f": {steps} steps, best at step {m.get('best_step')}, {m.get('n_train')} training and "
               f"{m.get('n_val')} checking photos" if steps else "")  # fmt: skip
        self.result_title.setText(f"<b>{lead}</b>{_html(how)}.<br>New model: {_html(name)}")
        self.labels_text.setText(labels_verdict(m))
        self.general_text.setText(general_verdict(m))
        ap, rec = chart_rows(m)
        self.ap_chart.set_rows(ap)
        thr = m.get("threshold")
        self.recall_chart.title = (
            f"Recall at threshold {thr:g}" if _ok(thr) else "Recall at threshold"
        )
        self.recall_chart.set_rows(rec)
        need = self.charts.sizeHint().height() + 4
        self.charts_scroll.setMaximumHeight(need)
        self.charts_scroll.setMinimumHeight(min(need, CHARTS_MAX_H))
        self.recommend_text.setText(recommendation(m))
        curve = self.final_curve
        if not pending and self.curve.loss:  # what was drawn live
            curve.loss, curve.val = list(self.curve.loss), list(self.curve.val)
        else:  # a run from before: its validation checks (newer engines keep them)
            curve.clear()
            for rec in run.get("history") or []:
                curve.add(rec)
        curve.total_steps = int(m.get("steps") or self.curve.total_steps or 0)
        curve.best_step = m.get("best_step")
        curve.setVisible(bool(curve.loss or curve.val))
        curve.update()
        self._result_lay.setStretch(self._gap, 0 if not self.final_curve.isHidden() else 1)
        self.result_msg.setText(
            "Keeping it adds it to your models; the model you use now is not changed."
        )
        self._result_buttons(decided=False)
        self.pages.setCurrentIndex(2)

    def _result_buttons(self, decided: bool) -> None:
        self.accept_btn.setVisible(not decided)
        self.discard_btn.setVisible(not decided)
        self.use_btn.setVisible(decided and self.accepted is not None)
        self.accept_btn.setEnabled(True)
        self.discard_btn.setEnabled(True)

    def accept_run(self) -> None:
        if self.run is None:
            return
        self.accept_btn.setEnabled(False)
        self.discard_btn.setEnabled(False)

        def done(r):
            self.accepted = r["model"]
            self.result_msg.setText(f"Kept as “{self.accepted.get('name') or self.accepted['key']}”. "
                                    "Switch to it now? Nothing is re-indexed, and you can switch back "
                                    "in Models… at any time.")  # fmt: skip
            self._result_buttons(decided=True)
            self.modelAccepted.emit(self.accepted)

        def failed(e):
            self.result_msg.setText(e.message)
            self._result_buttons(decided=False)

        self.bridge.call("train_accept", {"run": self.run["run"]}, on_result=done, on_error=failed,
                         context=self)  # fmt: skip

    def discard_run(self) -> None:
        if self.run is None:
            return
        self.accept_btn.setEnabled(False)
        self.discard_btn.setEnabled(False)
        self.bridge.call("train_discard", {"run": self.run["run"]},
                         on_result=lambda _r: self.show_setup("Discarded; nothing was kept."),
                         on_error=self._error, context=self)  # fmt: skip

    def use_accepted(self) -> None:
        if self.accepted is None:
            return
        self.use_btn.setEnabled(False)
        key = self.accepted["key"]

        def done(r):
            self.result_msg.setText(f"Now searching with “{r['model'].get('name') or key}”.")
            self.use_btn.hide()
            self.modelChanged.emit(r["model"])

        def failed(e):
            self.use_btn.setEnabled(True)
            self.result_msg.setText(e.message)

        self.bridge.call("use_model", {"key": key}, on_result=done, on_error=failed, context=self)

    def _error(self, e) -> None:
        target = {0: self.setup_msg, 1: self.train_msg}.get(
            self.pages.currentIndex(), self.result_msg
        )
        target.setText(e.message)


def _html(s) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
