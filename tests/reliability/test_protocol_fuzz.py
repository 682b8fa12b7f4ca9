"""The engine protocol under hostile input: every line gets exactly one reply, the engine never dies.

Extends tests/engine/test_protocol.py (28 hand-written bad lines) with seeded fuzzing
(byte-level and JSON-level mutations of valid requests: 400 lines by default, 4,000 with
-m slow), out-of-order and split messages, lone surrogates, and a check that the engine
holds no socket at all after real work (model, ANN, watcher and thumbnails loaded).
"""

from __future__ import annotations

import json
import os
import queue
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.service import protocol as P
from tests.engine.modelkit import MODEL_KEY
from tests.helpers import make_photos
from tests.reliability.harness import TIMEOUT, engine_client, make_data_dir, record

ROOT = Path(__file__).resolve().parents[2]


class Raw:
    """The engine process with nothing in between: bytes in, parsed replies out."""

    def __init__(self, data_dir: Path):
        self.log = data_dir.parent / f"engine-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.service.server", "--data-dir", str(data_dir), "--model", MODEL_KEY],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
            )  # fmt: skip
        self.replies: queue.Queue = queue.Queue()
        self.bad_output: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                self.bad_output.append(line)  # the engine itself must only ever write protocol
                continue
            if "event" not in msg:
                self.replies.put(msg)

    def send(self, raw: bytes) -> None:
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def take(self, n: int, timeout: float = TIMEOUT) -> list[dict]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            try:
                out.append(self.replies.get(timeout=min(left, 1.0)))
            except queue.Empty:
                continue
        return out

    def ask(self, raw: bytes) -> dict:
        self.send(raw)
        got = self.take(1)
        assert got, f"no reply to {raw[:100]!r}; engine log:\n{self.log.read_text()[-2000:]}"
        return got[0]

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def line(rid, method, params=None) -> bytes:
    return P.encode(P.request(rid, method, params or {}))


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    return make_photos(tmp_path / "photos", 6)


@pytest.fixture
def raw(tmp_path, photos):
    data_dir = make_data_dir(tmp_path / "data")
    c = engine_client(
        data_dir
    )  # index a few photos first, so every method has something to chew on
    c.start(timeout=TIMEOUT)
    c.events.wait("job_done", c.request("add_folder", {"path": str(photos[0].parent)})["job"])
    c.close()
    r = Raw(data_dir)
    assert "result" in r.ask(line("h", "hello", {"protocol": P.PROTOCOL_VERSION, "client": "fuzz"}))
    yield r
    r.close()


# -- fuzzing -----------------------------------------------------------------------------------

# Methods that only read, or pause/cancel: a mutation cannot make the engine index "/".
SAFE = ["ping", "status", "search", "similar", "failures", "photo_info", "thumbnail", "models_list",
        "cancel", "pause", "resume", "hello"]  # fmt: skip
ODD_VALUES = [None, True, False, -1, 0, 2**70, -(2**63), 1e308, -0.0, "", "a" * 5000, [], {}, [[[[[]]]]],
              "\udcff", "\ud800", "\x00", "../../../../etc/passwd", "/dev/zero", "/proc/self/mem",
              {"$ref": "#"}, "-\"", "NaN", ["x"] * 100, "🐈" * 100]  # fmt: skip


def valid_request(rnd: random.Random, rid, photos: list[Path]) -> dict:
    photo = str(rnd.choice(photos))
    params = {
        "search": {"text": rnd.choice(["red", "a photo -dark", 'x -"two words"']), "k": rnd.randint(1, 50),
                   "filters": {"folders": [str(photos[0].parent)], "exts": ["jpg"], "date_from": "2020-01-01"},
                   "like": [photo], "negatives": ["blue"]},
        "similar": {"photo": photo, "k": 5, "text": "bright"},
        "photo_info": {"path": photo},
        "thumbnail": {"path": photo, "size": rnd.choice([16, 64, 1024])},
        "cancel": {"job": "nope-1"},
        "hello": {"protocol": P.PROTOCOL_VERSION, "client": "again"},
        "failures": {"folder": str(photos[0].parent)},
    }  # fmt: skip
    method = rnd.choice(SAFE)
    return {"id": rid, "method": method, "params": dict(params.get(method, {}))}


def mutate_json(rnd: random.Random, msg: dict) -> bytes:
    """Wrong types, missing and extra keys, odd values, at any depth."""
    msg = json.loads(json.dumps(msg))
    for _ in range(rnd.randint(1, 3)):
        target = msg if rnd.random() < 0.3 or not msg.get("params") else msg["params"]
        if not isinstance(target, dict) or not target:
            continue
        key = rnd.choice(list(target))
        op = rnd.random()
        if op < 0.5:
            target[key] = rnd.choice(ODD_VALUES)
        elif op < 0.7:
            del target[key]
        else:
            target[rnd.choice(["zzz", "params", "id", "method", "__proto__"])] = rnd.choice(
                ODD_VALUES
            )
    if (
        "id" not in msg
        or not isinstance(msg.get("id"), int | str)
        or isinstance(msg.get("id"), bool)
    ):
        msg["id"] = msg.get("id")  # unusable ids are fine: the reply says null
    return json.dumps(msg, ensure_ascii=rnd.random() < 0.5).encode("utf-8", "surrogatepass") + b"\n"


def mutate_bytes(rnd: random.Random, data: bytes) -> bytes:
    """Flipped, dropped, inserted and truncated bytes (never a newline inside)."""
    b = bytearray(data.rstrip(b"\n"))
    for _ in range(rnd.randint(1, 6)):
        op = rnd.random()
        i = rnd.randrange(len(b) + 1)
        if op < 0.3 and i < len(b):
            b[i] ^= 1 << rnd.randrange(8)
        elif op < 0.5 and i < len(b):
            del b[i]
        elif op < 0.7:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        else:
            del b[rnd.randrange(len(b) // 2 + 1) :]
    return bytes(b).replace(b"\n", b" ") + b"\n"


def _fuzz(raw: Raw, photos, n: int, seed: int) -> dict:
    rnd = random.Random(seed)
    sent = 0
    codes: dict[str, int] = {}
    internal = []
    for start in range(0, n, 40):
        chunk = []
        for i in range(start, min(n, start + 40)):
            msg = valid_request(rnd, f"f{i}", photos)
            data = P.encode(msg)
            kind = rnd.random()
            chunk.append(
                data
                if kind < 0.15
                else mutate_json(rnd, msg)
                if kind < 0.6
                else mutate_bytes(rnd, data)
            )
        chunk = [c for c in chunk if c.strip()]  # blank lines get no reply, by design
        raw.send(b"".join(chunk))
        got = raw.take(len(chunk), timeout=120)
        assert len(got) == len(chunk), (
            f"{len(chunk)} lines, {len(got)} replies; log:\n{raw.log.read_text()[-3000:]}"
        )
        assert raw.take(1, timeout=0.3) == [], "more replies than lines"
        sent += len(chunk)
        for r in got:
            code = r["error"]["code"] if "error" in r else "ok"
            codes[code] = codes.get(code, 0) + 1
            if code == P.ErrorCode.INTERNAL_ERROR:
                internal.append(r["error"]["message"])
        assert raw.proc.poll() is None
        raw.ask(line("resume-now", "resume"))  # a fuzzed pause must not stall what follows
    assert raw.ask(line("last", "ping"))["result"] == {"pong": True}
    assert not raw.bad_output, raw.bad_output[:3]
    return dict(sent=sent, codes=codes, internal=internal)


def test_fuzzed_requests_each_get_one_reply(raw, photos):
    out = _fuzz(raw, photos, 400, seed=1)
    assert out["codes"].get("ok", 0) > 20 and len(out["codes"]) > 4  # the mix had teeth
    assert not out["internal"], out["internal"][:5]
    record("fuzzed protocol lines", injected=out["sent"], lost=0, note=json.dumps(out["codes"]))


@pytest.mark.slow
def test_fuzzed_requests_four_thousand(raw, photos):
    out = _fuzz(raw, photos, 4000, seed=2)
    assert not out["internal"], out["internal"][:5]
    record(
        "fuzzed protocol lines (slow)", injected=out["sent"], lost=0, note=json.dumps(out["codes"])
    )


# -- out of order, split, surrogates -----------------------------------------------------------


def test_out_of_order_and_split_messages(tmp_path):
    r = Raw(make_data_dir(tmp_path / "data"))
    try:
        assert r.ask(line(1, "status"))["error"]["code"] == P.ErrorCode.HELLO_REQUIRED
        assert r.ask(line(2, "cancel", {"job": "x"}))["error"]["code"] == P.ErrorCode.HELLO_REQUIRED
        assert "result" in r.ask(line(3, "hello", {"protocol": P.PROTOCOL_VERSION}))
        assert "result" in r.ask(
            line(4, "hello", {"protocol": P.PROTOCOL_VERSION})
        )  # again: harmless
        assert r.ask(line(5, "resume"))["result"] == {"paused": False}  # resume before any pause
        assert (
            r.ask(line(6, "cancel", {"job": "not-yet"}))["error"]["code"] == P.ErrorCode.NO_SUCH_JOB
        )
        assert (
            r.ask(b'{"event": "progress", "data": {}}\n')["error"]["code"]
            == P.ErrorCode.INVALID_REQUEST
        )
        assert (
            r.ask(b'{"id": 7, "error": {"code": "x", "message": "y"}}\n')["error"]["code"]
            == P.ErrorCode.INVALID_REQUEST
        )
        # One request split over several writes, several requests in one write.
        r.send(b'{"id": 8, "met')
        time.sleep(0.3)
        r.send(b'hod": "pi')
        time.sleep(0.3)
        assert r.ask(b'ng"}\n') == {"id": 8, "result": {"pong": True}}
        r.send(b"".join(line(i, "ping") for i in range(100, 130)))
        assert sorted(x["id"] for x in r.take(30)) == list(range(100, 130))
        # Lone surrogates (valid JSON escapes, no UTF-8 form) in ids, paths and texts.
        assert r.ask(b'{"id": "\\ud800", "method": "ping"}\n')["result"] == {"pong": True}
        for rid, method, params in [
            (9, b"thumbnail", b'{"path": "x\\udcff.jpg"}'),
            (10, b"add_folder", b'{"path": "photos\\udcff"}'),
            (11, b"search", b'{"text": "cat \\ud800"}'),
            (12, b"similar", b'{"photo": "\\udcff"}'),
        ]:
            rep = r.ask(b'{"id": %d, "method": "%s", "params": %s}\n' % (rid, method, params))
            assert rep["id"] == rid and rep["error"]["code"] == P.ErrorCode.INVALID_PARAMS, rep
            assert "surrogate" in rep["error"]["message"]
        # What the 4,000-line fuzz found: example photos that are no photo at all.
        for rid, photo in [(20, "a" * 5000), (21, 2**70), (22, "/proc/self/mem"), (23, "/")]:
            rep = r.ask(line(rid, "similar", {"photo": photo}))
            assert rep["error"]["code"] == P.ErrorCode.QUERY_ERROR, rep
        # The last request, without its newline, then EOF: answered, then a clean exit.
        r.send(b'{"id": 13, "method": "ping"}')
        r.proc.stdin.close()
        assert r.take(1) == [{"id": 13, "result": {"pong": True}}]
        assert r.proc.wait(30) == 0
    finally:
        r.close()
    assert not r.bad_output
    record("out-of-order / split / surrogate messages", injected=16, lost=0)


def test_requests_after_shutdown_are_not_run(tmp_path):
    r = Raw(make_data_dir(tmp_path / "data"))
    try:
        assert "result" in r.ask(line(1, "hello", {"protocol": P.PROTOCOL_VERSION}))
        r.send(line(2, "shutdown") + line(3, "add_folder", {"path": str(tmp_path)}))
        replies = r.take(2, timeout=15)
        assert replies[0] == {"id": 2, "result": {"ok": True}}
        assert all(x.get("error", {}).get("code") == P.ErrorCode.SHUTTING_DOWN for x in replies[1:])
        assert r.proc.wait(30) == 0
    finally:
        r.close()
    con = sqlite3.connect(
        tmp_path / "data" / "library.db"
    )  # the request after shutdown did nothing
    assert con.execute("SELECT COUNT(*) FROM folders").fetchone()[0] == 0
    con.close()


# -- no network ------------------------------------------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:[") : -1])
    return out


def _listening_inodes() -> set[str]:
    out = set()
    for name, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        p = Path("/proc/net") / name
        if not p.exists():
            continue
        for row in p.read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == state:
                out.add(cols[9])
    return out


def test_no_socket_after_real_work(tmp_path, photos):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc (Linux)")
    data_dir = make_data_dir(tmp_path / "data")
    c = engine_client(data_dir)
    c.start(timeout=TIMEOUT)
    try:
        c.events.wait("job_done", c.request("add_folder", {"path": str(photos[0].parent)})["job"])
        assert c.request("search", {"text": "a photo", "like": [str(photos[1])], "k": 3})["hits"]
        c.request("thumbnail", {"path": str(photos[2]), "size": 64})
        c.request("models_list")
        mine = _socket_inodes(c.pid)
        assert not mine, f"the engine holds sockets: {mine}"
        assert not mine & _listening_inodes()
    finally:
        c.close()
