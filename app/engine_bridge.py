"""EngineBridge: the engine client as a QObject.

:class:`engine.service.client.EngineClient` calls back on its own reader thread. Qt widgets may
only be touched from the GUI thread, so every callback here is turned into a signal
that Qt queues to the thread the bridge lives on. Calls never block: ``call()``
returns at once and the result (or error) arrives later as a slot invocation on the
GUI thread. Starting the engine (spawn + handshake) also runs on a worker thread, so
the window is up before the engine is.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine.service.client import EngineClient, EngineDied, EngineError, default_command

from . import __version__

log = logging.getLogger(__name__)

ENGINE_NICE = 10  # POSIX niceness of the engine: indexing yields the CPU to the window
ResultFn = Callable[[Any], None]
ErrorFn = Callable[[EngineError], None]


class EngineBridge(QObject):
    """Owns one EngineClient; emits Qt signals on the GUI thread.

    Signals:
      ready(dict)       the handshake succeeded (hello's result); also after a restart
      failed(str)       the engine could not be started
      died(str)         the engine went away unexpectedly (a restart follows on its own)
      event(dict)       any protocol event (progress, job_done, library_changed, ...)
      stateChanged(str) "starting" | "ready" | "restarting" | "failed" | "stopped"
    """

    ready = Signal(object)
    failed = Signal(str)
    died = Signal(str)
    event = Signal(object)
    stateChanged = Signal(str)
    # internal: a Future finished on some thread -> run its callbacks on ours
    _finished = Signal(object, object, object, object)
    _started = Signal(object, object)
    _restarted = Signal(object)
    _died = Signal(object)
    _event = Signal(object)

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        model: str | None = None,
        extra_args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        nice: int = ENGINE_NICE,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        if nice and command is None and os.name == "posix" and shutil.which("nice"):
            # Indexing is background work: on a small machine it must not take the CPU from
            # the window. `nice` execs the engine, so the pid stays the engine's own.
            command = ["nice", "-n", str(int(nice)), *default_command()]
        self.state = "stopped"
        self.hello: dict | None = None
        self.client = EngineClient(
            command,
            data_dir=data_dir,
            model=model,
            extra_args=extra_args,
            on_event=self._event.emit,
            on_died=self._died.emit,
            on_restarted=self._restarted.emit,
            auto_restart=True,
            client_name=f"photosift-app {__version__}",
            stderr_sink=self._log_stderr,
        )
        q = Qt.ConnectionType.QueuedConnection
        self._finished.connect(self._on_finished, q)
        self._started.connect(self._on_started, q)
        self._restarted.connect(self._on_restarted, q)
        self._died.connect(self._on_died, q)
        self._event.connect(self.event, q)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the engine and shake hands on a worker thread; `ready` or `failed` follows."""
        self._set_state("starting")

        def run():
            try:
                hello, err = self.client.start(), None
            except Exception as e:  # EngineDied, version mismatch, cannot spawn
                hello, err = None, e
            self._started.emit(hello, err)

        threading.Thread(target=run, name="engine-start", daemon=True).start()

    def restart(self) -> None:
        """Stop the engine (if it runs) and start a new one, off the GUI thread."""
        self._set_state("restarting")

        def run():
            try:
                hello, err = self.client.restart(), None
            except Exception as e:
                hello, err = None, e
            self._started.emit(hello, err)

        threading.Thread(target=run, name="engine-restart", daemon=True).start()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the engine down (it saves its caches). Blocks: call when the window closes."""
        self.client.auto_restart = False
        self.client.close(timeout)
        self._set_state("stopped")

    @property
    def pid(self) -> int | None:
        return self.client.pid

    @property
    def is_ready(self) -> bool:
        return self.state == "ready"

    # -- calls -----------------------------------------------------------------------------

    def call(self, method: str, params: dict | None = None, on_result: ResultFn | None = None,
             on_error: ErrorFn | None = None, context: QObject | None = None) -> Future:  # fmt: skip
        """Send a request; `on_result(result)` or `on_error(EngineError)` runs later on the GUI thread.

        `context`: when given and deleted before the reply comes, the callbacks are skipped
        (a dialog closed meanwhile). Without `on_error`, errors are logged.
        """
        fut = self.client.call(method, params)  # type: ignore[arg-type]
        if on_result is None and on_error is None:
            fut.add_done_callback(lambda f: self._log_failure(method, f))
            return fut
        guard = _Guard(context) if context is not None else None
        fut.add_done_callback(lambda f: self._finished.emit(f, on_result, on_error, guard))
        return fut

    @Slot(object, object, object, object)
    def _on_finished(self, fut: Future, on_result, on_error, guard) -> None:
        if guard is not None and not guard.alive:
            return
        exc = fut.exception()
        if exc is None:
            if on_result is not None:
                on_result(fut.result())
            return
        if not isinstance(exc, EngineError):
            exc = EngineError("internal_error", str(exc))
        if on_error is not None:
            on_error(exc)
        else:
            log.warning("engine call failed: %s", exc)

    @staticmethod
    def _log_failure(method: str, fut: Future) -> None:
        exc = fut.exception()
        if exc is not None and not isinstance(exc, EngineDied):
            log.warning("%s failed: %s", method, exc)

    # -- client callbacks, now on the GUI thread -------------------------------------------------

    @Slot(object, object)
    def _on_started(self, hello, err) -> None:
        if err is not None:
            self._set_state("failed")
            msg = getattr(err, "message", None) or str(err)
            tail = getattr(err, "stderr_tail", "")
            self.failed.emit(msg + (f"\n\n{tail[-1500:]}" if tail else ""))
            return
        self.hello = hello
        self._set_state("ready")
        self.ready.emit(hello)

    @Slot(object)
    def _on_restarted(self, hello) -> None:
        self._on_started(hello, None)

    @Slot(object)
    def _on_died(self, died: EngineDied) -> None:
        self._set_state("restarting" if self.client.auto_restart else "failed")
        self.died.emit(died.message)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    @staticmethod
    def _log_stderr(line: str) -> None:
        # The engine's own log lines already carry a level; keep them out of the user's way.
        log.debug("engine: %s", line.rstrip())


class _Guard:
    """Tells whether a QObject still exists (its `destroyed` signal has not fired)."""

    def __init__(self, obj: QObject):
        self.alive = True
        obj.destroyed.connect(self._gone)

    def _gone(self, *_):
        self.alive = False
