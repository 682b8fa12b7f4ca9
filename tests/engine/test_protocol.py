"""The engine process and its JSON-lines protocol, end to end: a real `python -m engine.service.server`.

Covers the handshake, jobs with progress events, search through the protocol, hostile
input (every bad line gets an error reply and the engine keeps answering), kill -9 in the
middle of a scan (the client notices, a restart resumes without redoing committed work),
the watcher behind the engine, and that the engine holds no network socket.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from engine.service import protocol as P
from engine.service.client import EngineClient, EngineDied, EngineError
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import Events, make_photos, wait_for

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0




@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    install_test_model(Settings(data_dir=d))
    return d


@pytest.fixture
def engine(data_dir):
    events = Events()
    died: list[EngineDied] = []
    c = EngineClient(data_dir=data_dir, model=MODEL_KEY, on_event=events, on_died=died.append,
                     extra_args=["--watch-quiet", "0.2"])  # fmt: skip
    c.events, c.died = events, died
    c.start(timeout=TIMEOUT)
    yield c
    c.close()


class RawEngine:
    """The engine with nothing in between: bytes in, parsed lines out (events skipped)."""

    def __init__(self, data_dir: Path):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.log = data_dir.parent / f"engine-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.service.server", "--data-dir", str(data_dir), "--model", MODEL_KEY],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
            )  # fmt: skip
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            msg = json.loads(line)  # the engine itself must only ever write valid protocol
            if "event" not in msg:
                self.replies.put(msg)

    def send(self, raw: bytes) -> None:
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def ask(self, raw: bytes, timeout: float = TIMEOUT) -> dict:
        self.send(raw)
        return self.replies.get(timeout=timeout)

    def exit_code(self, timeout: float = 30) -> int:
        """Wait for the engine to exit; a hang fails with what it logged."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the engine did not exit within {timeout} s; its log:\n{self.log.read_text()[-3000:]}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def raw(data_dir):
    r = RawEngine(data_dir)
    yield r
    r.close()


def hello_line(rid=1, protocol=P.PROTOCOL_VERSION) -> bytes:
    return P.encode(P.request(rid, "hello", {"protocol": protocol, "client": "test"}))


# -- handshake ---------------------------------------------------------------------------


def test_handshake(engine, data_dir):
    h = engine.hello
    assert h["protocol"] == P.PROTOCOL_VERSION and h["engine_version"]
    assert h["pid"] == engine.pid and h["data_dir"] == str(data_dir)
    assert h["model"]["key"] == MODEL_KEY and h["model"]["here"] is True
    assert h["library_error"] is None
    st = engine.request("status")
    assert st["folders"] == [] and st["jobs"] == [] and st["paused"] is False
    assert engine.request("ping") == {"pong": True}


def test_hello_is_required_and_versions_must_match(raw):
    r = raw.ask(P.encode(P.request(1, "status")))
    assert r["id"] == 1 and r["error"]["code"] == P.ErrorCode.HELLO_REQUIRED
    r = raw.ask(hello_line(2, protocol=P.PROTOCOL_VERSION + 1))
    assert r["error"]["code"] == P.ErrorCode.VERSION_MISMATCH and str(P.PROTOCOL_VERSION) in r["error"]["message"]
    r = raw.ask(hello_line(3))
    assert r["result"]["protocol"] == P.PROTOCOL_VERSION
    assert raw.ask(P.encode(P.request(4, "ping")))["result"] == {"pong": True}


# -- hostile input -----------------------------------------------------------------------

BAD_LINES = [
    (b"this is not json\n", None, P.ErrorCode.PARSE_ERROR),
    (b'{"id": 3, "meth\n', None, P.ErrorCode.PARSE_ERROR),  # truncated
    (b"\xff\xfe\x00garbage\x80\x81\n", None, P.ErrorCode.PARSE_ERROR),  # binary garbage
    (random.Random(0).randbytes(3000).replace(b"\n", b"") + b"\n", None, None),  # random bytes
    (b"[1, 2, 3]\n", None, P.ErrorCode.INVALID_REQUEST),
    (b'{"id": 5}\n', 5, P.ErrorCode.INVALID_REQUEST),  # no method
    (b'{"id": 6, "result": {}}\n', 6, P.ErrorCode.INVALID_REQUEST),  # a reply sent to the engine
    (b'{"id": true, "method": "ping"}\n', None, P.ErrorCode.INVALID_REQUEST),
    (b'{"id": [1], "method": "ping"}\n', None, P.ErrorCode.INVALID_REQUEST),
    (b'{"id": 7, "method": "launch_rockets"}\n', 7, P.ErrorCode.UNKNOWN_METHOD),
    (b'{"id": 8, "method": "search", "params": []}\n', 8, P.ErrorCode.INVALID_PARAMS),
    (b'{"id": 9, "method": "add_folder", "params": {}}\n', 9, P.ErrorCode.INVALID_PARAMS),  # missing
    (b'{"id": 10, "method": "search", "params": {"text": 5}}\n', 10, P.ErrorCode.INVALID_PARAMS),
    (b'{"id": 11, "method": "search", "params": {"txet": "a"}}\n', 11, P.ErrorCode.INVALID_PARAMS),
    (b'{"id": 12, "method": "search", "params": {"text": "a", "k": NaN}}\n', 12, P.ErrorCode.INVALID_PARAMS),
    (b'{"id": 13, "method": "search", "params": {"text": "a", "k": true}}\n', 13, P.ErrorCode.INVALID_PARAMS),
    (b'{"id": 14, "method": "cancel", "params": {"job": "j999"}}\n', 14, P.ErrorCode.NO_SUCH_JOB),
    (b'{"id": 15, "method": "search", "params": {"text": "a", "k": 0}}\n', 15, P.ErrorCode.QUERY_ERROR),
    (b'{"id": 16, "method": "search", "params": {"text": "?!"}}\n', 16, P.ErrorCode.QUERY_ERROR),
    (b'{"id": 17, "method": "add_folder", "params": {"path": "/no/such/folder"}}\n', 17, P.ErrorCode.QUERY_ERROR),
    (b'{"id": 18, "method": "remove_folder", "params": {"path": "/not/a/library/folder"}}\n', 18,
     P.ErrorCode.QUERY_ERROR),
    (b'{"id": 19, "method": "use_model", "params": {"key": "no-such-model"}}\n', 19, P.ErrorCode.MODEL_ERROR),
    (b'{"id": 20, "method": "thumbnail", "params": {"path": "/no/such.jpg"}}\n', 20, P.ErrorCode.QUERY_ERROR),
    (b'{"id": 21, "method": "thumbnail", "params": {"path": "/etc/hostname"}}\n', 21, P.ErrorCode.DECODE_ERROR),
    (b'{"id": 22, "method": "photo_info", "params": {"image_id": 1180591620717411303424}}\n', 22,
     P.ErrorCode.INTERNAL_ERROR),  # SQLite cannot hold that integer: an unexpected exception
    (b'{"id": 23, "method": "ping", "params": {"x": ' + b"[" * 200_000 + b"\n", None, P.ErrorCode.PARSE_ERROR),
    (b'{"id": 24, "method": "ping", "params": {"pad": "' + b"a" * (P.MAX_LINE_BYTES + 10) + b'"}}\n', 24,
     P.ErrorCode.TOO_LARGE),
    (b'{"id": 25, "method": "ping", "params": null}\n', 25, None),  # null params: same as none
]  # fmt: skip


def test_malformed_input_gets_error_replies_and_the_engine_survives(raw):
    assert "result" in raw.ask(hello_line(1))
    raw.send(b"\n   \n")  # blank lines are ignored, not answered
    for n, (line, rid, code) in enumerate(BAD_LINES):
        r = raw.ask(line)
        assert r.get("id") == rid, (n, line[:80], r)
        if code is None and rid == 25:
            assert r["result"] == {"pong": True}
            continue
        assert "error" in r, (n, line[:80], r)
        assert r["error"]["message"], r
        if code is not None:
            assert r["error"]["code"] == code, (n, line[:80], r)
        # ... and it still answers.
        pong = raw.ask(P.encode(P.request(f"ping-{n}", "ping")))
        assert pong == {"id": f"ping-{n}", "result": {"pong": True}}
    assert raw.proc.poll() is None


class _Out:
    """A thread-safe stdout stand-in for an in-process Engine."""

    def __init__(self):
        self.lines: list[dict] = []
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.lines.append(json.loads(data))

    def flush(self) -> None:
        pass

    def reply(self, rid):
        with self.lock:
            return next((m for m in self.lines if "event" not in m and m.get("id") == rid), None)


def test_duplicate_ids_and_floods_are_refused(data_dir):
    from engine.service.server import MAX_IN_FLIGHT, Engine

    out = _Out()
    eng = Engine(Settings.load(data_dir), MODEL_KEY, out)
    gate = threading.Event()
    try:
        eng.handle_line(hello_line("h"))
        assert "result" in wait_for(lambda: out.reply("h"), "hello")
        eng.m_status = lambda: gate.wait(TIMEOUT) and {"slow": True}  # a call that takes its time
        eng.handle_line(P.encode(P.request(1, "status")))
        eng.handle_line(P.encode(P.request(1, "status")))  # same id while the first is in flight
        assert wait_for(lambda: out.reply(1), "a reply to the duplicate")["error"]["code"] == P.ErrorCode.DUPLICATE_ID
        for i in range(2, MAX_IN_FLIGHT + 2):
            eng.handle_line(P.encode(P.request(i, "status")))
        busy = wait_for(lambda: out.reply(MAX_IN_FLIGHT + 1), "a reply to the flood")
        assert busy["error"]["code"] == P.ErrorCode.BUSY
        eng.handle_line(P.encode(P.request("p", "ping")))  # control calls never wait behind them
        assert wait_for(lambda: out.reply("p"), "ping")["result"] == {"pong": True}
        gate.set()
        wait_for(lambda: sum(1 for m in out.lines if m.get("result") == {"slow": True}) == MAX_IN_FLIGHT,
                 "the slow calls are all answered")  # fmt: skip
        eng.handle_line(P.encode(P.request(1, "ping")))  # an id may be reused once answered
        wait_for(lambda: [m for m in out.lines if m.get("id") == 1 and m.get("result") == {"pong": True}], "reuse")
    finally:
        gate.set()
        eng.close()


def test_replies_come_by_id_not_in_order(engine, tmp_path):
    make_photos(tmp_path / "photos", 6)
    job = engine.request("add_folder", {"path": str(tmp_path / "photos")})["job"]
    engine.events.wait("job_done", job)
    futs = [engine.call("search", {"text": f"photo {i}", "k": 3}) for i in range(12)]
    futs += [engine.call("ping") for _ in range(12)]
    for f in futs:
        assert f.result(TIMEOUT)
    # Client-side checks catch a caller's bug before anything is sent.
    with pytest.raises(EngineError) as e:
        engine.call("search", {"text": 3}).result(1)
    assert e.value.code == P.ErrorCode.INVALID_PARAMS


# -- jobs, search, photos ----------------------------------------------------------------


def test_add_folder_streams_progress_then_search_finds_the_photos(engine, tmp_path):
    photos = make_photos(tmp_path / "photos", 40)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    res = engine.request("add_folder", {"path": str(tmp_path / "photos")})
    assert res["folder"] == str((tmp_path / "photos").resolve())
    job = res["job"]
    done = engine.events.wait("job_done", job, "the scan job finishes")["data"]
    assert done["kind"] == "scan" and not done["cancelled"]
    assert (done["embedded"], done["failed"], done["total"]) == (40, 1, 41)
    assert engine.events.of("job_started", job)[0]["data"]["kind"] == "scan"
    progress = [e["data"] for e in engine.events.of("progress", job)]
    assert progress, "no progress events"
    last = progress[-1]
    assert (last["done"], last["total"], last["unit"]) == (41, 41, "files")
    assert last["rate"] > 0 and last["eta_s"] == 0 and last["embedded"] == 40
    assert all(a["done"] <= b["done"] for a, b in zip(progress, progress[1:], strict=False))

    # Search by example: the photo itself comes first; every hit is one of ours.
    target = str(photos[7])
    hits = engine.request("search", {"like": [target], "k": 5})["hits"]
    assert hits[0]["path"] == target and hits[0]["score"] > 0.99
    assert hits[0]["metadata"]["width"] == 64 and hits[0]["online"] is True
    sim = engine.request("similar", {"photo": target, "k": 3})["hits"]
    assert sim[0]["path"] == target
    text = engine.request("search", {"text": "a photo", "k": 100})["hits"]
    assert {h["path"] for h in text} == {str(p) for p in photos}
    assert [h["score"] for h in text] == sorted((h["score"] for h in text), reverse=True)
    none = engine.request("search", {"text": "a photo", "filters": {"exts": ["heic"]}})["hits"]
    assert none == []

    fails = engine.request("failures")["failures"]
    assert [f["path"] for f in fails] == [str(tmp_path / "photos" / "broken.jpg")] and fails[0]["reason"]

    info = engine.request("photo_info", {"path": target})
    assert info["image_id"] == hits[0]["image_id"] and info["tags"] == [] and info["format"] == "JPEG"
    assert engine.request("photo_info", {"image_id": info["image_id"]})["path"] == target

    th = engine.request("thumbnail", {"path": target, "size": 32})
    assert Path(th["path"]).is_file() and max(th["width"], th["height"]) == 32
    assert Path(th["path"]).is_relative_to(engine.hello["data_dir"])
    with Image.open(th["path"]) as im:
        assert im.format == "JPEG"
    assert engine.request("thumbnail", {"path": target, "size": 32}) == th  # cached

    st = engine.request("status")
    assert st["files"] == 40 and st["failures"] == 1 and st["folders"][0]["watched"] is True


def test_pause_resume_cancel(engine, tmp_path):
    make_photos(tmp_path / "a", 20)
    assert engine.request("pause") == {"paused": True}
    assert engine.events.wait("pause_state")["data"] == {"paused": True}
    job = engine.request("add_folder", {"path": str(tmp_path / "a")})["job"]
    engine.events.wait("job_started", job)
    time.sleep(0.5)  # paused: nothing may be embedded meanwhile
    st = engine.request("status")
    assert st["paused"] is True and st["files"] == 0 and [j["job"] for j in st["jobs"]] == [job]
    assert engine.request("cancel", {"job": job}) == {"cancelled": True}
    done = engine.events.wait("job_done", job)["data"]
    assert done["cancelled"] is True
    assert engine.request("cancel", {"job": job}) == {"cancelled": False}  # already over

    assert engine.request("resume") == {"paused": False}
    job2 = engine.request("scan")["job"]
    done2 = engine.events.wait("job_done", job2)["data"]
    assert done2["embedded"] == 20 and not done2["cancelled"]


def test_removing_a_folder_preempts_a_running_scan_which_then_goes_on(engine, tmp_path):
    make_photos(tmp_path / "small", 2)
    job0 = engine.request("add_folder", {"path": str(tmp_path / "small")})["job"]
    engine.events.wait("job_done", job0)
    make_photos(tmp_path / "big", 30, seed=5)
    engine.request("pause")
    job = engine.request("add_folder", {"path": str(tmp_path / "big")})["job"]
    engine.events.wait("job_started", job)
    # The writer is busy with a paused scan; the removal must not wait for it.
    # (the paused scan never ends by itself: a removal that waited for it would time out)
    assert engine.request("remove_folder", {"path": str(tmp_path / "small")}, timeout=20)["folder"]
    assert [f["path"] for f in engine.request("status")["folders"]] == [str((tmp_path / "big").resolve())]
    assert not engine.events.of("job_done", job)  # preempted, not ended
    engine.request("resume")
    done = engine.events.wait("job_done", job)["data"]
    assert done["embedded"] == 30 and not done["cancelled"]
    assert len(engine.events.of("job_started", job)) == 1


def test_watcher_through_the_engine(engine, tmp_path):
    root = tmp_path / "photos"
    make_photos(root, 3)
    job = engine.request("add_folder", {"path": str(root)})["job"]
    engine.events.wait("job_done", job)
    new = make_photos(root, 1, seed=99, prefix="new")[0]
    wait_for(lambda: engine.events.of("library_changed"), "a library_changed event")
    hits = engine.request("search", {"like": [str(new)], "k": 1})["hits"]
    assert hits[0]["path"] == str(new)
    watch_jobs = [e["data"] for e in engine.events.of("job_done") if e["data"]["kind"] == "watch"]
    assert sum(j["embedded"] for j in watch_jobs) == 1

    assert engine.request("remove_folder", {"path": str(root)}) == {"folder": str(root.resolve())}
    st = engine.request("status")
    assert st["folders"] == [] and st["files"] == 0


def test_watch_jobs_honour_pause_and_a_cancelled_one_is_not_lost(engine, tmp_path):
    root = tmp_path / "photos"
    make_photos(root, 2)
    engine.events.wait("job_done", engine.request("add_folder", {"path": str(root)})["job"])
    engine.request("pause")
    new = make_photos(root, 5, seed=42, prefix="new")[0]  # more than the one photo in hand

    def watch_jobs():
        return [e["job"] for e in engine.events.of("job_started") if e["data"]["kind"] == "watch"]

    first = wait_for(watch_jobs, "a watch job starts")[0]
    time.sleep(0.3)
    assert engine.request("status")["files"] == 2  # paused: not applied
    with pytest.raises(EngineError):
        engine.request("photo_info", {"path": str(new)})
    assert engine.request("cancel", {"job": first}) == {"cancelled": True}
    assert engine.events.wait("job_done", first)["data"]["cancelled"] is True
    wait_for(lambda: len(watch_jobs()) >= 2, "the watcher hands its changes out again")
    engine.request("resume")
    wait_for(lambda: engine.request("status")["files"] == 7, "the changes are applied after resume")


# -- robustness --------------------------------------------------------------------------


def _db_counts(data_dir: Path) -> tuple[str, int, int]:
    con = sqlite3.connect(data_dir / "library.db")
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        vecs = con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        files = con.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        return ok, vecs, files
    finally:
        con.close()


def test_kill_9_mid_scan_then_restart_resumes(engine, data_dir, tmp_path):
    n = 150
    make_photos(tmp_path / "photos", n)
    job = engine.request("add_folder", {"path": str(tmp_path / "photos")})["job"]
    first = wait_for(lambda: [e for e in engine.events.of("progress", job) if e["data"]["embedded"] >= 8],
                     "some batches are committed")  # fmt: skip
    engine.request("pause")  # hold it mid-scan, so the kill cannot come too late
    reported = max(e["data"]["embedded"] for e in engine.events.of("progress", job))
    assert reported >= first[0]["data"]["embedded"]

    pid = engine.pid
    os.kill(pid, signal.SIGSTOP)  # a call now cannot be answered ...
    pending = engine.call("status")
    os.kill(pid, signal.SIGKILL)  # ... and must fail when the engine dies
    with pytest.raises(EngineDied) as e:
        pending.result(TIMEOUT)
    assert e.value.code == P.ErrorCode.ENGINE_DIED
    wait_for(lambda: engine.died, "the client reports the death")
    assert engine.died[0].returncode == -signal.SIGKILL
    assert not engine.alive
    with pytest.raises(EngineDied):
        engine.call("ping").result(1)

    ok, kept, files = _db_counts(data_dir)
    assert ok == "ok"
    assert reported <= kept < n and files == kept  # every batch reported done is still there

    with engine.events.lock:
        engine.events.items.clear()
    engine.restart(timeout=TIMEOUT)
    catch_up = engine.events.wait("job_started", what="the catch-up scan starts after the restart")
    assert catch_up["job"] != job  # job ids are not reused across engine restarts
    done = engine.events.wait("job_done", catch_up["job"])["data"]
    assert done["embedded"] == n - kept and done["unchanged"] == kept  # nothing committed redone
    assert _db_counts(data_dir)[1:] == (n, n)


def test_auto_restart(data_dir):
    died, restarted = [], []
    c = EngineClient(data_dir=data_dir, model=MODEL_KEY, auto_restart=True,
                     on_died=died.append, on_restarted=restarted.append)  # fmt: skip
    c.start(timeout=TIMEOUT)
    try:
        old = c.pid
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: restarted, "the client restarts the engine by itself")
        assert died and died[0].returncode == -signal.SIGKILL
        assert c.pid != old and restarted[0]["pid"] == c.pid
        assert c.request("ping") == {"pong": True}
    finally:
        c.close()
    assert not c.alive


@pytest.mark.slow
def test_kill_9_at_random_points(data_dir, tmp_path):
    """Kill the engine at random moments of a long scan; the database stays sound throughout."""
    n = 400
    make_photos(tmp_path / "photos", n)
    rnd = random.Random(1)
    c = EngineClient(data_dir=data_dir, model=MODEL_KEY)
    c.start(timeout=TIMEOUT)
    c.request("add_folder", {"path": str(tmp_path / "photos")})
    for _ in range(8):
        time.sleep(rnd.uniform(0.05, 1.5))
        os.kill(c.pid, signal.SIGKILL)
        wait_for(lambda: not c.alive, "the engine is gone")
        ok, kept, files = _db_counts(data_dir)
        assert ok == "ok" and files == kept <= n
        c.restart(timeout=TIMEOUT)  # resumes on its own
    wait_for(lambda: _db_counts(data_dir)[1:] == (n, n), "everything is indexed in the end", 300)
    c.close()


def test_no_network_sockets(engine):
    fds = Path(f"/proc/{engine.pid}/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile
    assert targets and any(t.startswith("pipe:") for t in targets)
    assert not [t for t in targets if t.startswith("socket:")], targets


def test_engine_exits_when_its_stdin_closes(data_dir):
    r = RawEngine(data_dir)
    assert "result" in r.ask(hello_line())
    r.proc.stdin.close()  # the app died without a word
    assert r.exit_code() == 0, r.log.read_text()[-3000:]


def test_shutdown_and_sigterm_exit_cleanly(data_dir):
    r = RawEngine(data_dir)
    assert "result" in r.ask(hello_line())
    assert r.ask(P.encode(P.request(2, "shutdown")))["result"] == {"ok": True}
    assert r.exit_code() == 0, r.log.read_text()[-3000:]
    r = RawEngine(data_dir)
    assert "result" in r.ask(hello_line())
    r.proc.send_signal(signal.SIGTERM)
    assert r.exit_code() == 0, r.log.read_text()[-3000:]


def test_protocol_module_is_cheap_to_import():
    code = "import sys, engine.service.protocol, engine.service.client; print(sorted(m for m in ('numpy', 'onnxruntime', 'PIL', 'hnswlib', 'watchdog') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_every_method_has_a_handler_and_typed_params():
    from engine.service.server import Engine

    for name, (params, _result, runs) in P.METHODS.items():
        assert callable(getattr(Engine, "m_" + name, None)), name
        assert runs in ("control", "quick", "writer", "job")
        if not params.__required_keys__:
            P.check({}, params)
    assert set(P.METHODS) == set(P.Method.__args__)
