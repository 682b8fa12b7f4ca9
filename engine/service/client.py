"""Talking to the engine process from the app (or a test, or a script). Qt-free: plain threads.

    client = EngineClient(data_dir=..., on_event=..., on_died=...)
    hello = client.start()                     # spawn + handshake
    fut = client.call("search", {"text": "red kite"})
    hits = fut.result(timeout=10)["hits"]

Every call returns a ``concurrent.futures.Future`` at once, so a window never waits on
the engine; the app turns completions and events into Qt signals. Callbacks run on the
client's reader thread and must not block. When the engine dies (EOF on its stdout),
every pending future fails with :class:`EngineDied`, ``on_died`` is called, and
``restart()`` (or ``auto_restart=True``) brings up a new one. Nothing committed is
lost: the new engine resumes interrupted indexing on its own after the handshake.

This module imports nothing heavy (engine.service.protocol is standard library only).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..child import frozen_self
from ..errors import PhotosiftError
from . import protocol as P

log = logging.getLogger(__name__)

READ_LIMIT = 256 * 1024 * 1024  # engine replies are trusted, but not without bound


class EngineError(PhotosiftError):
    """The engine answered a call with an error. ``code`` is a protocol.ErrorCode value."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class EngineDied(EngineError):
    """The engine process went away before answering (crash, kill, or stopped on purpose)."""

    def __init__(self, message: str, returncode: int | None = None, stderr_tail: str = ""):
        super().__init__(P.ErrorCode.ENGINE_DIED, message)
        self.returncode, self.stderr_tail = returncode, stderr_tail


def default_command() -> list[str]:
    """How to start the engine: a frozen app starts itself in engine mode, else this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--engine"]
    return [sys.executable, "-m", "engine.service.server"]


class EngineClient:
    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        data_dir: str | os.PathLike | None = None,
        model: str | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        on_event: Callable[[dict], None] | None = None,
        on_died: Callable[[EngineDied], None] | None = None,
        on_restarted: Callable[[dict], None] | None = None,
        auto_restart: bool = False,
        client_name: str = "photosift",
        stderr_sink: Callable[[str], None] | None = None,
    ):
        self.command = list(command) if command else default_command()
        if data_dir is not None:
            self.command += ["--data-dir", os.fspath(data_dir)]
        if model:
            self.command += ["--model", model]
        self.command += list(extra_args)
        self.env = env
        self.on_event, self.on_died, self.on_restarted = on_event, on_died, on_restarted
        self.auto_restart = auto_restart
        self.client_name = client_name
        self.stderr_sink = stderr_sink or (lambda line: sys.stderr.write(line))
        self.hello: dict | None = None
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, Future] = {}
        self._proc: subprocess.Popen | None = None
        self._closing = False
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._restarts: collections.deque[float] = collections.deque(maxlen=5)
        self._generation = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> dict:
        """Spawn the engine and do the handshake; returns hello's result. Blocks up to `timeout`."""
        with self._lock:
            if self.alive:
                raise EngineError(P.ErrorCode.INTERNAL_ERROR, "the engine is already running")
            self._closing = False
            self._generation += 1
            gen = self._generation
            # Calls to the previous engine can never be answered now (its reader may not have
            # noticed the death yet, and will leave them alone once it sees a new generation).
            stale, self._pending = self._pending, {}
            for fut in stale.values():
                if not fut.done():
                    fut.set_exception(EngineDied("the engine was restarted before it answered"))
            env = frozen_self(dict(os.environ if self.env is None else self.env))
            if not getattr(sys, "frozen", False):
                # The child imports the same engine package as this process.
                root = str(Path(__file__).resolve().parents[2])  # engine/service/client.py
                env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            env.setdefault("PYTHONUNBUFFERED", "1")
            self._proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, close_fds=True,
            )  # fmt: skip
            proc = self._proc
        threading.Thread(target=self._read_stdout, args=(proc, gen), name="engine-reader", daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc,), name="engine-stderr", daemon=True).start()
        fut = self.call("hello", {"protocol": P.PROTOCOL_VERSION, "client": self.client_name})
        try:
            self.hello = fut.result(timeout)
        except TimeoutError:
            self._kill(proc)
            raise EngineDied(f"the engine did not answer the handshake within {timeout:.0f} s",
                             proc.poll(), self.stderr_tail()) from None  # fmt: skip
        except EngineError as e:
            if not isinstance(e, EngineDied):
                self._kill(proc)  # e.g. version_mismatch: this engine is of no use to us
            raise
        return self.hello

    def restart(self, timeout: float = 60.0) -> dict:
        """Stop the engine if it still runs (kill if it must) and start a fresh one."""
        self.close(timeout=5.0)
        return self.start(timeout)

    def close(self, timeout: float = 10.0) -> int | None:
        """Ask the engine to shut down (it saves its caches), kill it if it does not. Returns its exit code."""
        with self._lock:
            proc = self._proc
            self._closing = True
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(Exception):  # it may already be going
                self.call("shutdown").result(timeout=min(timeout, 5.0))
            with contextlib.suppress(OSError):
                proc.stdin.close()  # EOF also tells it to stop
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("engine %s did not stop in %.0f s; killing it", proc.pid, timeout)
                self._kill(proc)
        return proc.returncode

    def _kill(self, proc: subprocess.Popen) -> None:
        try:
            proc.kill()
            proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def stderr_tail(self) -> str:
        return "".join(self._tail)

    # -- calls -----------------------------------------------------------------------------

    def call(self, method: P.Method, params: dict[str, Any] | None = None) -> Future:
        """Send a request; the Future gets the result, or fails with EngineError / EngineDied."""
        fut: Future = Future()
        params = params or {}
        try:
            if method not in P.METHODS:
                raise P.ProtocolError(P.ErrorCode.UNKNOWN_METHOD, f"unknown method {method!r}")
            P.check(params, P.METHODS[method][0], "params")  # a caller's bug fails here, not in the engine
        except P.ProtocolError as e:
            fut.set_exception(EngineError(e.code, f"{method}: {e.message}"))
            return fut
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None or self._closing and method != "shutdown":
                fut.set_exception(EngineDied("the engine is not running", proc.returncode if proc else None))
                return fut
            rid = next(self._ids)
            self._pending[rid] = fut
        fut.request_id = rid  # progress events of a long request carry it (engine.service.reqprogress)
        data = P.encode(P.request(rid, method, params))
        if len(data) > P.MAX_LINE_BYTES:
            self._fail(rid, EngineError(P.ErrorCode.TOO_LARGE, f"{method}: request over {P.MAX_LINE_BYTES} bytes"))
            return fut
        try:
            with self._write_lock:
                proc.stdin.write(data)
                proc.stdin.flush()
        except (OSError, ValueError):
            self._fail(rid, EngineDied("the engine is not reading (its pipe is closed)", proc.poll(), self.stderr_tail()))
        return fut

    def request(self, method: P.Method, params: dict[str, Any] | None = None, timeout: float | None = 60.0) -> Any:
        """Blocking convenience for scripts and tests (never for a GUI thread)."""
        return self.call(method, params).result(timeout)

    def _fail(self, rid: int, exc: Exception) -> None:
        with self._lock:
            fut = self._pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    # -- reading ---------------------------------------------------------------------------

    def _read_stdout(self, proc: subprocess.Popen, gen: int) -> None:
        out = proc.stdout
        try:
            while True:
                line = out.readline(READ_LIMIT)
                if not line:
                    break
                try:
                    msg = P.decode_line(line) if len(line) <= P.MAX_LINE_BYTES else json.loads(line)
                except Exception as e:
                    log.warning("engine sent a line that is not protocol: %s", e)
                    continue
                if "event" in msg:
                    self._deliver_event(msg)
                    continue
                rid = msg.get("id")
                with self._lock:
                    fut = self._pending.pop(rid, None) if isinstance(rid, int) else None
                if fut is None:
                    if "error" in msg:
                        err = msg.get("error") or {}
                        log.warning("engine error not tied to a call: %s: %s", err.get("code"), err.get("message"))
                    continue
                if "error" in msg:
                    err = msg["error"] or {}
                    fut.set_exception(EngineError(str(err.get("code", P.ErrorCode.INTERNAL_ERROR)), str(err.get("message", ""))))
                else:
                    fut.set_result(msg.get("result"))
        except (OSError, ValueError):
            pass
        self._on_eof(proc, gen)

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        try:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace")
                self._tail.append(line)
                with contextlib.suppress(Exception):
                    self.stderr_sink(line)
        except (OSError, ValueError):
            pass

    def _deliver_event(self, msg: dict) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(msg)
        except Exception:
            log.exception("engine event callback failed")

    def _on_eof(self, proc: subprocess.Popen, gen: int) -> None:
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:  # stdout closed but still running: of no use, end it
            self._kill(proc)
            code = proc.returncode
        time.sleep(0.05)  # let the stderr reader catch the last words
        with self._lock:
            if gen != self._generation:
                return  # an old engine; a new one is already up
            intended = self._closing
            pending, self._pending = self._pending, {}
        how = f"exit code {code}" if code is not None and code >= 0 else f"signal {-code}" if code else "unknown"
        died = EngineDied(f"the engine stopped ({how})" + ("" if intended else " unexpectedly"), code, self.stderr_tail())
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(died)
        if intended:
            return
        log.warning("engine %s died: %s", proc.pid, how)
        if self.on_died is not None:
            try:
                self.on_died(died)
            except Exception:
                log.exception("on_died callback failed")
        if self.auto_restart:
            threading.Thread(target=self._auto_restart, name="engine-restart", daemon=True).start()

    def _auto_restart(self) -> None:
        now = time.monotonic()
        self._restarts.append(now)
        if len(self._restarts) == self._restarts.maxlen and now - self._restarts[0] < 60:
            log.error("the engine died %d times in a minute; not restarting it again", self._restarts.maxlen)
            return
        time.sleep(min(8.0, 0.5 * 2 ** (len(self._restarts) - 1)))
        try:
            hello = self.start()
        except Exception as e:
            log.error("could not restart the engine: %s", e)
            return
        if self.on_restarted is not None:
            try:
                self.on_restarted(hello)
            except Exception:
                log.exception("on_restarted callback failed")
