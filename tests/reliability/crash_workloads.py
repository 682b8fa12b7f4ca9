"""Tagging and training as workloads of the kill -9 run (tests/reliability/test_crash.py).

Both are driven the way the app drives them: a thread sends one request after another
(answers, vocabulary edits, XMP exports; training runs and their acceptance) and notes
what the engine confirmed. The kill lands wherever that thread is; after it, what the
engine confirmed must be on disk, and nothing half-done may be taken for done:

* tagging: every answer whose reply arrived is stored; the automatic tags a restarted
  engine reports equal a fresh re-tag of the same state (a half-written re-tag never
  survives as truth); every XMP sidecar parses whole; no photo is embedded again;
* training: the training child dies with its engine (no orphan ``training.finetune.job``,
  found by scanning /proc); every model folder the engine lists is complete (its files
  match the hashes in its model.json and both towers load); ``train_pending`` lists only
  complete candidates, and the restarted engine has removed the killed runs' folders; the
  stored image vectors are byte-identical; training starts again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from engine.models.folder import check_model_folder
from engine.models.registry import MODEL_FILE, load_spec
from engine.models.registry import file_sha256 as _sha256
from engine.service.client import EngineError
from engine.settings import Settings
from tests.helpers import make_photos, wait_for
from tests.reliability.harness import TIMEOUT, query
from tests.reliability.test_crash import Workload

VOCAB = "crash"
LABELS = ["red", "blue", "circle", "square"]


def vectors_digest(db: Path) -> str:
    """sha256 of every stored image vector, in a fixed order."""
    h = hashlib.sha256()
    for space, image, vec in query(db, "SELECT space_id, image_id, vec FROM vectors ORDER BY 1, 2"):
        h.update(f"{space}:{image}:".encode())
        h.update(vec)
    return h.hexdigest()


def finetune_children(data_dir: Path) -> list[int]:
    """Pids of live ``training.finetune.job`` processes working on `data_dir` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if state != "Z" and b"training.finetune.job" in argv and str(data_dir).encode() in argv:
            out.append(int(d.name))
    return out


class _Driver(Workload):
    """A workload sent by a client thread, one request at a time, stopped at each kill."""

    def _ops(self):
        raise NotImplementedError

    def _do(self, client, op) -> None:
        raise NotImplementedError

    def start(self, client):
        self.ctx.update(next=0, doing=None, acked_in_life=0)
        self._launch(client)

    def _launch(self, client):
        stop = threading.Event()

        def drive():
            ops = self._ops()
            while self.ctx["next"] < len(ops) and not stop.is_set():
                op = ops[self.ctx["next"]]
                self.ctx["doing"] = op[0]
                try:
                    self._do(client, op)
                except Exception as e:  # the engine died under the request: the next life redoes it
                    if not (stop.is_set() or not client.alive):
                        self.ctx["error"] = e  # a real failure: the test thread raises it
                    return
                if stop.is_set():
                    return  # its reply came, but from a life already declared over
                self.ctx["next"] += 1
            self.ctx["doing"] = "idle"

        self.ctx["stop"] = stop
        self.ctx["thread"] = t = threading.Thread(
            target=drive, name=f"{self.name}-driver", daemon=True
        )
        t.start()

    def in_flight(self):
        return self.ctx.get("doing")

    def _raise_driver_error(self):
        if (e := self.ctx.get("error")) is not None:
            raise AssertionError(f"{self.name}: a request failed: {e!r}") from e

    def _stop_driver(self):
        self.ctx["stop"].set()
        self.ctx["thread"].join(TIMEOUT)
        assert not self.ctx["thread"].is_alive(), "the driver did not notice the engine died"
        self._raise_driver_error()

    def resume(self, client):
        self.ctx["acked_in_life"] = 0
        self._launch(client)

    def finished(self, client, data_dir):
        self._raise_driver_error()
        return not self.ctx["thread"].is_alive() and self.durable(data_dir) >= self.total

    def _wait_job(self, client, job: str, timeout: float) -> dict:
        """The job's job_done data (job_failed raises, a dead engine ends the wait)."""
        ev = client.events
        wait_for(lambda: ev.of("job_done", job) or ev.of("job_failed", job) or not client.alive,
                 f"job {job} ends", timeout)  # fmt: skip
        if failed := ev.of("job_failed", job):
            raise AssertionError(f"job {job} failed: {failed[-1]['data']}")
        if not client.alive:
            raise EngineError("engine_died", "the engine died during the job")
        return ev.of("job_done", job)[-1]["data"]


class Tagging(_Driver):
    """Answers (one photo and label each), with vocabulary edits (each re-tags the library)
    and XMP sidecar exports between them. A unit of work is a stored answer."""

    def prepare(self, tmp, data_dir, size):
        self.ctx["db"] = data_dir / "library.db"
        self.ctx["photos"] = tmp / "photos"
        # An answer takes some 30 ms: with 40 photos (160 answers) the slow run's work was
        # over by its 12th kill of 20 (measured), so larger runs get more photos to answer.
        n_photos = max(40, size // 8)
        self.ctx["paths"] = [str(p) for p in make_photos(self.ctx["photos"], n_photos, seed=5)]
        # One answer per (photo, label) pair, so the stored answers only grow.
        self.total = min(size // 2, len(self.ctx["paths"]) * len(LABELS))
        self.ctx["acked"] = set()

    def setup(self, client):
        job = client.request("add_folder", {"path": str(self.ctx["photos"])})["job"]
        client.events.wait("job_done", job, "the photos are indexed")
        client.request("vocab_create", {"name": VOCAB, "labels": LABELS}, timeout=TIMEOUT)
        self.ctx["vectors"] = vectors_digest(self.ctx["db"])

    def _ops(self):
        if "ops" not in self.ctx:
            paths, ops = self.ctx["paths"], []
            for i in range(self.total):
                state = "confirmed" if i % 3 else "rejected"
                ops.append(("tag_answer", paths[i % len(paths)], LABELS[i // len(paths)], state))
                if i % 5 == 2:  # add or drop a label: the whole library is re-tagged
                    ops.append(("vocab_update", i))
                if i % 7 == 4:
                    ops.append(("tag_export_xmp",))
            self.ctx["ops"] = ops
        return self.ctx["ops"]

    def _do(self, client, op):
        if op[0] == "tag_answer":
            _, path, label, state = op
            client.request("tag_answer", {"vocab": VOCAB, "label": label, "photos": [path],
                                          "state": state}, timeout=TIMEOUT)  # fmt: skip
            self.ctx["acked"].add((path, label, state))
            # An answer stored by the life before whose reply the kill swallowed is redone
            # (and confirmed) now: it is not new work of this life.
            if (path, label, state) not in self.ctx.get("stored_at_kill", ()):
                self.ctx["acked_in_life"] += 1
        elif op[0] == "vocab_update":
            # Alternate: add a label (with its own prompts), then take it out again with new
            # templates, so both the label set and every label's text vector change.
            extra = {"name": "extra", "prompts": [f"a photo of something odd number {op[1]}"]}
            if (
                client.request("vocab_get", {"name": VOCAB})["vocab"]["label_list"][-1]["name"]
                == "extra"
            ):
                client.request("vocab_update", {"name": VOCAB, "remove": ["extra"], "templates":
                               [f"a picture of a {{}} ({op[1]})"]}, timeout=TIMEOUT)  # fmt: skip
            else:
                client.request("vocab_update", {"name": VOCAB, "add": [extra]}, timeout=TIMEOUT)
        else:
            job = client.request("tag_export_xmp", {"vocab": VOCAB})["job"]
            self._wait_job(client, job, TIMEOUT)

    def durable(self, data_dir):
        try:
            return query(data_dir / "library.db", "SELECT COUNT(*) FROM tag_answers")[0][0]
        except Exception:  # not created yet
            return 0

    def reported(self, run):
        return self.ctx.get("acked_in_life", 0)

    def _stored_answers(self) -> set[tuple[str, str, str]]:
        rows = query(
            self.ctx["db"],
            """
            SELECT f.path, l.name, a.state FROM tag_answers a JOIN labels l ON l.id = a.label_id
            JOIN images i ON i.hash = a.image_hash JOIN files f ON f.image_id = i.id""",
        )
        return {(p, lab, "confirmed" if st == 1 else "rejected") for p, lab, st in rows}

    def _check_sidecars(self) -> int:
        """Every sidecar parses as a whole XMP packet; returns how many temp files lie around."""
        folder = self.ctx["photos"]
        for side in folder.glob("*.xmp"):
            ET.fromstring(side.read_bytes())  # raises on a torn file
        for p in self.ctx["paths"]:
            from engine.xmp.keywords import read_keywords

            read_keywords(Path(p))
        return len(list(folder.glob(".*.tmp")))

    def check_killed(self, data_dir):
        self._stop_driver()
        self.ctx["killed_in"] = self.ctx["doing"]
        self.ctx["stored_at_kill"] = stored = self._stored_answers()
        missing = self.ctx["acked"] - stored
        assert not missing, f"answers confirmed before the kill are gone: {sorted(missing)[:5]}"
        self.ctx.setdefault("temps", []).append(self._check_sidecars())
        assert vectors_digest(self.ctx["db"]) == self.ctx["vectors"]

    def resume(self, client):
        # What a restarted engine reports is what a fresh re-tag of the same state gives.
        counts = client.request("tag_counts", {"vocab": VOCAB}, timeout=TIMEOUT)["counts"]
        client.request("tag_run", {"vocab": VOCAB}, timeout=TIMEOUT)
        again = client.request("tag_counts", {"vocab": VOCAB}, timeout=TIMEOUT)["counts"]
        diff = [(a, b) for a, b in zip(counts, again, strict=True) if a != b]
        assert counts == again, (
            f"a half-written re-tag survived the kill (in flight: {self.ctx['killed_in']}): {diff}"
        )
        super().resume(client)

    def check_resumed(self, run, before):
        scans = [e["data"] for e in run.of_kind("scan", "job_done")]
        assert all(s["embedded"] == 0 for s in scans), f"photos were embedded again: {scans}"

    def check_final(self, client, data_dir, run, before):
        assert self._stored_answers() == self.ctx["acked"]
        job = client.request("tag_export_xmp", {"vocab": VOCAB})["job"]
        self._wait_job(client, job, TIMEOUT)  # leftover temp files break nothing
        self._check_sidecars()
        assert list(self.ctx["photos"].glob("*.xmp")), "the exports wrote no sidecar to check"
        counts = client.request("tag_counts", {"vocab": VOCAB})["counts"]
        client.request("tag_run", {"vocab": VOCAB})
        assert client.request("tag_counts", {"vocab": VOCAB})["counts"] == counts
        assert vectors_digest(self.ctx["db"]) == self.ctx["vectors"]
        assert query(self.ctx["db"], "SELECT COUNT(*) FROM files")[0][0] == len(self.ctx["paths"])


class Training(_Driver):
    """Fine-tuning runs, each accepted once done. A unit of work is an accepted model.

    A whole run (child start, training, ONNX export, parity check) takes tens of seconds on
    a shared CPU, so the fast version (``size`` under 500) trains no model to the end: its one
    unit is a training that, after the kills, starts and reaches its first step and is then
    cancelled (which must leave no child either). The slow version trains and accepts.
    """

    def prepare(self, tmp, data_dir, size):
        from tests.worldlabels import label_tree

        self.ctx["data_dir"] = data_dir
        self.ctx["db"] = data_dir / "library.db"
        self.ctx["labels"] = label_tree(tmp / "labels", n=12)
        self.ctx["probe"] = size < 500
        self.total = 1 if size < 500 else 5
        # Kill anywhere in a run's first seconds (child start, torch import, first steps): less
        # than a whole run (start to accept takes 12 s or more here), so the last model is not
        # done before the last kill lands.
        self.linger = 6.0 if self.ctx["probe"] else 8.0
        self.reported_kills = 2  # five models over twenty lives: most lives accept none

    def setup(self, client):
        job = client.request("add_folder", {"path": str(self.ctx["labels"])})["job"]
        client.events.wait("job_done", job, "the label folders are indexed", TIMEOUT * 3)
        self.ctx["vectors"] = vectors_digest(self.ctx["db"])
        if not self.ctx["probe"]:
            # The kills after the fourth model must land inside the fifth run, so a life may
            # linger less than a whole run takes on this machine (measured: one run, discarded).
            t0 = time.monotonic()
            job = client.request("train_start", {"folders": str(self.ctx["labels"]), "max_steps": 12},
                                 timeout=TIMEOUT)["job"]  # fmt: skip
            run = self._wait_job(client, job, 900)["run"]
            client.request("train_discard", {"run": run}, timeout=TIMEOUT)
            self.linger = min(8.0, 0.5 * (time.monotonic() - t0))  # the first run starts colder

    def _ops(self):
        # Trained until `total` models are in (kills cost runs; the driver stops once there).
        return [("train", i) for i in range(self.total * 50)]

    def _do(self, client, op):
        if self.durable(self.ctx["data_dir"]) >= self.total:
            self.ctx["next"] = len(self._ops()) - 1
            return
        job = client.request("train_start", {"folders": str(self.ctx["labels"]), "max_steps": 12},
                             timeout=TIMEOUT)["job"]  # fmt: skip
        self.ctx["doing"] = "training"
        if self.ctx["probe"]:
            self._probe(client, job)
            return
        run = self._wait_job(client, job, 900)["run"]
        self.ctx["doing"] = "train_accept"
        client.request("train_accept", {"run": run}, timeout=TIMEOUT)
        self.ctx["acked_in_life"] += 1

    def _probe(self, client, job: str) -> None:
        """Wait for the training's first step, cancel it, and see it end with its child."""
        ev = client.events

        def stepped():
            return any("step" in e["data"].get("train", {}) for e in ev.of("progress", job))

        wait_for(lambda: stepped() or ev.of("job_failed", job) or not client.alive,
                 "the training reaches a step", 600)  # fmt: skip
        if not client.alive:
            raise EngineError("engine_died", "the engine died during the training")
        assert not ev.of("job_failed", job), ev.of("job_failed", job)
        client.request("cancel", {"job": job}, timeout=TIMEOUT)
        wait_for(
            lambda: ev.of("job_done", job) or not client.alive,
            "the cancelled training ends",
            TIMEOUT,
        )
        if not client.alive:
            raise EngineError("engine_died", "the engine died during the training")
        assert ev.of("job_done", job)[-1]["data"]["cancelled"]
        wait_for(
            lambda: not finetune_children(self.ctx["data_dir"]), "the cancelled child is gone", 30
        )
        self.ctx["probed"] = 1
        self.ctx["acked_in_life"] += 1

    def _models(self) -> list[Path]:
        d = Settings.load(self.ctx["data_dir"]).models_dir
        return sorted(p for p in d.iterdir() if "-ft-" in p.name) if d.is_dir() else []

    def durable(self, data_dir):
        return sum((m / MODEL_FILE).is_file() for m in self._models()) + self.ctx.get("probed", 0)

    def reported(self, run):
        return self.ctx.get("acked_in_life", 0)

    @staticmethod
    def _complete(folder: Path) -> None:
        """Every file its model.json names is there with its hash, and both towers load."""
        spec = load_spec(folder / MODEL_FILE)
        assert spec.source.files, f"{folder} names no files"
        for name, want in spec.source.files.items():
            assert _sha256(folder / name) == want["sha256"], (
                f"{folder / name} is not the file trained"
            )
        check_model_folder(folder)

    def check_killed(self, data_dir):
        self._stop_driver()
        # The child notices its parent is gone; allow it a few seconds to get there.
        wait_for(lambda: not finetune_children(data_dir), "the training child dies with its engine",
                 30, poll=0.2)  # fmt: skip
        for m in self._models():  # a model folder is whole or not there
            assert (m / MODEL_FILE).is_file(), f"half a model folder: {sorted(os.listdir(m))}"
            self._complete(m)
        assert vectors_digest(self.ctx["db"]) == self.ctx["vectors"]

    def resume(self, client):
        listed = {m["key"] for m in client.request("models_list", timeout=TIMEOUT)["models"]}
        assert {m.name for m in self._models()} <= listed
        runs = client.request("train_pending", timeout=TIMEOUT)["runs"]
        root = self.ctx["data_dir"] / "training"
        # What the killed engine's runs left half-done is gone; finished candidates wait.
        left = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        assert left == sorted(r["run"] for r in runs), (left, runs)
        for r in runs:  # only complete candidates are offered; accept them (a kill may hit that)
            self._complete(root / r["run"] / "candidate")
        self.ctx["pending"] = self.ctx.get("pending", 0) + len(runs)
        for r in runs[: max(0, self.total - self.durable(self.ctx["data_dir"]))]:
            client.request("train_accept", {"run": r["run"]}, timeout=TIMEOUT)
        super().resume(client)

    def check_final(self, client, data_dir, run, before):
        assert not finetune_children(data_dir)
        listed = {m["key"] for m in client.request("models_list")["models"]}
        for m in self._models():
            assert m.name in listed
            self._complete(m)
        assert vectors_digest(self.ctx["db"]) == self.ctx["vectors"]
