"""Progress of a request that answers when its work is done (not a job), as events.

``vocab_create``/``vocab_update``/``vocab_import``/``tag_run`` re-tag the library before they
reply; on a large library that takes seconds. Making them jobs would change their replies;
instead, once such a request has run for ``delay`` seconds, the engine sends ``progress``
events carrying the request's id (``"request": id``, no ``"job"``), at most every ``interval``
seconds, plus one when the count reaches the total. Quick requests send none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

DELAY_S = 1.0  # quicker re-tags than this report nothing: no bar flashes by
INTERVAL_S = 0.2  # about five events a second, like jobs

_current = threading.local()  # the request being answered on this thread


def set_current(request_id: Any) -> None:
    """Called by the server before a handler runs: whose behalf its progress is on."""
    _current.id = request_id


def current() -> Any:
    return getattr(_current, "id", None)


class RequestProgress:
    """A ``progress(done, total)`` callback that emits throttled events for one request."""

    def __init__(self, emit: Callable[[dict], None], unit: str = "photos", *, delay: float | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.emit, self.unit, self.clock = emit, unit, clock
        self.delay = DELAY_S if delay is None else delay
        self.interval = INTERVAL_S if interval is None else interval
        self.started = clock()
        self.last: float | None = None  # when the last event went out (None: none yet)

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        elapsed = now - self.started
        if elapsed < self.delay:
            return
        final = done >= total
        if self.last is not None and now - self.last < self.interval and not final:
            return
        if self.last is None and final:
            return  # nothing shown yet and already done: the reply follows at once
        self.last = now
        rate = done / elapsed if elapsed > 0 else 0.0
        self.emit(dict(done=done, total=total, unit=self.unit, embedded=0, reused=0, failed=0,
                       rate=round(rate, 1), eta_s=round((total - done) / rate, 1) if rate > 0 else None,
                       elapsed_s=round(elapsed, 3), current=None, paused=False))  # fmt: skip
