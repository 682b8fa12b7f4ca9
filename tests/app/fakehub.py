"""A stand-in for the Hugging Face hub on 127.0.0.1, for download tests without a network.

It answers what ``huggingface_hub.hf_hub_download`` asks (``HEAD`` then ``GET`` on
``/{repo}/resolve/{revision}/{file}``) with the headers the real hub sends (commit, ETag,
size; byte ranges for resumed downloads), and ``HfApi.list_repo_tree``'s
``/api/models/{repo}/tree/{revision}[/{path}]`` with the hub's JSON (type, path, size, git
blob id, and for LFS files their sha256). As on the hub, the ETag is the file's sha256 for
a file kept in LFS (weights: ``.onnx``, ``.safetensors``) and its git blob id for a small
file kept in git. A file can be held back behind a gate so that a test can act (cancel)
while a download is in flight, or served damaged (``corrupt``) while the published hash
stays the real one; every request is recorded.

Point the engine at it with ``HF_ENDPOINT=<hub.url>`` and ``HF_HUB_OFFLINE=0``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine.models.folder import MODEL_FOLDER_FILES

COMMIT = "c0ffee" + "0" * 34
LFS_SUFFIXES = (".onnx", ".safetensors", ".bin", ".onnx_data")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def repo_files(folder: Path) -> dict[str, bytes]:
    """A folder laid out as a repo (e.g. made by training.testmodels.hub_layouts) as the hub serves it."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def published_etag(name: str, data: bytes) -> str:
    """What the hub publishes for a file: sha256 for LFS files, the git blob id otherwise."""
    if name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return git_blob_id(data)
DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


class FakeHub:
    def __init__(self, repo: str, files: dict[str, bytes]):
        self.repo, self.files = repo, files
        self.gates: dict[str, threading.Event] = {}  # file -> opened when the test says so
        self.served: dict[str, bytes] = {}  # file -> the bytes sent instead (damaged on the way)
        self.drops: dict[str, int] = {}  # file -> its next whole GET breaks off after this many bytes
        self.requests: list[tuple[str, str, str | None]] = []  # (method, file, Range header)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _tree(self) -> bool:
                m = re.fullmatch(rf"/api/models/{re.escape(hub.repo)}/tree/[^/?]+/?([^?]*)(\?.*)?", self.path)
                if m is None:
                    return False
                under, recursive = m.group(1).strip("/"), "recursive=true" in (m.group(2) or "").lower()
                rows, dirs = [], set()
                for name, data in sorted(hub.files.items()):
                    if under and not name.startswith(under + "/"):
                        continue
                    rest = name[len(under) + 1 :] if under else name
                    if "/" in rest and not recursive:
                        dirs.add((under + "/" if under else "") + rest.split("/")[0])
                        continue
                    row = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": name}
                    if name.endswith(LFS_SUFFIXES):
                        row["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    rows.append(row)
                rows += [{"type": "directory", "oid": "0" * 40, "path": d} for d in sorted(dirs)]
                body = json.dumps(rows).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True

            def _file(self) -> str | None:
                m = re.fullmatch(rf"/{re.escape(hub.repo)}/resolve/[^/]+/(.+)", self.path)
                return m.group(1) if m and m.group(1) in hub.files else None

            def _headers(self, name: str, status: int, length: int, extra=()) -> None:
                data = hub.files[name]
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{published_etag(name, data)}"')
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()

            def do_HEAD(self):
                name = self._file()
                hub.requests.append(("HEAD", name or self.path, None))
                if name is None:
                    self.send_error(404)
                    return
                self._headers(name, 200, len(hub.files[name]))

            def do_GET(self):
                if self._tree():
                    hub.requests.append(("TREE", self.path, None))
                    return
                name = self._file()
                rng = self.headers.get("Range")
                hub.requests.append(("GET", name or self.path, rng))
                if name is None:
                    self.send_error(404)
                    return
                gate = hub.gates.get(name)
                if gate is not None:
                    gate.wait(30)
                data = hub.served.get(name, hub.files[name])
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m:
                    start = int(m.group(1))
                    self._headers(name, 206, len(data) - start,
                                  [("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")])  # fmt: skip
                    data = data[start:]
                else:
                    self._headers(name, 200, len(data))
                    cut = hub.drops.pop(name, None)
                    if cut is not None:  # the connection breaks mid-body (Content-Length promised more)
                        data = data[:cut]
                        self.close_connection = True
                with contextlib.suppress(OSError):  # the client gave up (cancelled)
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def hold(self, name: str) -> threading.Event:
        """Hold `name` back (its GET waits) until the returned event is set."""
        gate = self.gates[name] = threading.Event()
        return gate

    def drop(self, name: str, after: int) -> None:
        """Break off the next whole download of `name` after `after` bytes (once)."""
        self.drops[name] = after

    def corrupt(self, name: str, at: int | None = None) -> bytes:
        """Serve `name` with one byte flipped (at `at`, default the middle), same size, while the
        hub keeps publishing the real file's hash. Returns the damaged bytes."""
        data = bytearray(self.files[name])
        at = len(data) // 2 if at is None else at
        data[at] ^= 0xFF
        self.served[name] = bytes(data)
        return self.served[name]

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for gate in self.gates.values():
            gate.set()
        self.server.shutdown()
        self.server.server_close()


def point_hf_at(hub: FakeHub, monkeypatch) -> None:
    """Let huggingface_hub in this process download from `hub` (it reads HF_HUB_OFFLINE once,
    at import; the engine passes HF_ENDPOINT on each call)."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)


def demo_model_json(key: str, **source) -> dict:
    """The demo model's model.json under another key (so another image space) and source."""
    meta = json.loads((DEMO / "model.json").read_text(encoding="utf-8"))
    files = {f: v for f, v in meta["source"]["files"].items() if f in MODEL_FOLDER_FILES}
    meta.update(key=key, name=f"{key} (a copy of the demo model)")
    meta["source"] = {"files": files, **source}
    return meta


def hub_model_files(key: str, repo: str) -> dict[str, bytes]:
    """A ready photosift model folder as a hub repo holds it: the demo model, renamed."""
    files = {f: (DEMO / f).read_bytes() for f in MODEL_FOLDER_FILES if f != "model.json"}
    files["model.json"] = json.dumps(demo_model_json(key, onnx_repo=repo)).encode()
    return files


def register_hub_model(data_dir: Path, key: str, repo: str) -> None:
    """Make `key` a known model that is not here yet: its model.json alone in the models folder."""
    folder = Path(data_dir) / "models" / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(demo_model_json(key, onnx_repo=repo)))


def model_folder_copy(dest: Path, key: str) -> Path:
    """An exported model folder (to import), e.g. on a USB stick: the demo model, renamed."""
    dest = Path(dest)
    dest.mkdir(parents=True)
    for f in MODEL_FOLDER_FILES:
        if f != "model.json":
            shutil.copy2(DEMO / f, dest / f)
    (dest / "model.json").write_text(json.dumps(demo_model_json(key)))
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.app.fakehub REPO FOLDER``: serve FOLDER's files as hub repo REPO on
    127.0.0.1 until killed; prints the endpoint URL first (for HF_ENDPOINT)."""
    import signal
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tests.app.fakehub REPO FOLDER", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeHub(args[0], repo_files(Path(args[1]))) as hub:
        print(hub.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
