"""The engine protocol: the one place it is defined. Both sides import this module.

It is cheap to import (standard library only: no numpy, onnxruntime or Qt), so the
app uses these types without pulling in the engine's heavy parts.

Transport and framing
---------------------
The app starts the engine as a child process (``python -m engine.service.server`` or a frozen
executable) and talks to it over the child's stdin (requests) and stdout (replies and
events). The engine listens on no network port. Every message is one JSON object
encoded as UTF-8 on one line, ending with ``\\n``. A line may be at most
:data:`MAX_LINE_BYTES` (4 MiB); longer lines are discarded and answered with a
``too_large`` error. Blank lines are ignored. The engine's stderr carries free-form
logs for humans, never protocol.

Messages
--------
Request (client -> engine)::

    {"id": 7, "method": "search", "params": {"text": "red kite", "k": 20}}

``id`` is an integer or a string (at most 128 characters) chosen by the client and
unique among its requests still waiting for a reply (a reused one gets
``duplicate_id``; more than 64 waiting gets ``busy``). ``params`` may be left out when a
method takes none. Unknown top-level keys are ignored.

Reply (engine -> client), exactly one per request that had a usable id::

    {"id": 7, "result": {...}}
    {"id": 7, "error": {"code": "query_error", "message": "type something to search for"}}

Replies are matched by id, not by order: quick calls run on a pool, so a fast call
can be answered before a slow one sent earlier. A request whose id could not be read
(not JSON, not an object, oversized) is answered with ``"id": null``.

Event (engine -> client), unsolicited::

    {"event": "progress", "job": "5f2a1c-3", "data": {...}}

``job`` is present on job events only. A few requests that reply only when their work is
done (``vocab_create``, ``vocab_update``, ``vocab_import``, ``tag_run``: they re-tag the
library) send ``progress`` events for it once they have run for a second, with the
request's id instead of a job's: ``{"event": "progress", "request": 7, "data": {...}}``
(``unit`` "photos", each photo counted once per vocabulary re-tagged; at most about five a
second, and one when ``done`` reaches ``total``). Their reply still carries the result.

Handshake and versions
----------------------
The first request must be ``hello`` with the client's :data:`PROTOCOL_VERSION`. Any
other request before a successful hello gets ``hello_required``. A client whose
protocol version differs from the engine's gets ``version_mismatch`` (the message says
both versions) and should restart the engine that matches it. The version is bumped
whenever a method, parameter, result field or event changes incompatibly; adding an
optional parameter or a result field does not bump it.

After the first successful hello the engine starts watching every library folder and
queues a catch-up scan of all folders (stat-only when nothing changed; it also
finishes a scan that a crash interrupted, without redoing committed batches).

Jobs
----
Long work runs as a job: the request is answered at once with ``{"job": "<id>"}``
(a string, unique across engine restarts too), and the job then reports through
events: ``job_started``, ``progress`` (at most about five a second, plus one at the
end), then exactly one of ``job_done`` (``data`` = the job's report; ``cancelled`` is
true when it was cancelled) or ``job_failed`` (``data`` = ``{"code", "message"}``).

Indexing jobs (``scan``, the scan ``add_folder`` starts, and ``watch`` jobs, which
apply changes the folder watcher saw) run one at a time; ``download`` jobs run beside
them. ``pause`` pauses all indexing (running and queued jobs, and the watcher's
changes) until ``resume``; ``cancel`` stops one job after the photo in hand, keeping
every committed batch. A watcher change interrupts a scan that has run for a few
seconds, and ``remove_folder`` / ``use_model`` interrupt it at once; an interrupted
scan is re-queued under the same id (no second ``job_started``; its ``progress``
totals restart from what is left) and nothing it committed is redone.

Errors
------
Every error reply carries one of :class:`ErrorCode`'s codes and a message meant for a
person. Malformed, truncated, oversized or out-of-order input never stops the engine;
neither does an unexpected exception inside a method (``internal_error``, with the
traceback on stderr).

The methods, their parameters and results, and the events are engine.service.messages (each
shape is a TypedDict there); this module re-exports them, so ``protocol.SearchParams`` is
``messages.SearchParams``. Here: framing, the handshake, jobs, errors, and the checks.
"""

import json
import re
import types
import typing
from typing import Any, Literal

# Which files are photos (extensions, lower case, no dot): the app's type filter and drops.
from ..photos.formats import PHOTO_EXTENSIONS, RAW_EXTENSIONS  # noqa: F401 (part of this module's API)

# The messages (every method's params and result, the events, METHODS): part of this API too.
from .messages import *  # noqa: F403
from .messages import METHODS

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_ID_CHARS = 128


class ErrorCode:
    """The ``code`` of an error reply."""

    PARSE_ERROR = "parse_error"  # not UTF-8 or not JSON
    TOO_LARGE = "too_large"  # line over MAX_LINE_BYTES
    INVALID_REQUEST = "invalid_request"  # not an object, bad id, no method
    UNKNOWN_METHOD = "unknown_method"
    INVALID_PARAMS = "invalid_params"  # missing, unknown or ill-typed parameter
    HELLO_REQUIRED = "hello_required"  # a request before the handshake
    VERSION_MISMATCH = "version_mismatch"
    DUPLICATE_ID = "duplicate_id"  # the id of a request still in flight
    BUSY = "busy"  # too many requests in flight; retry later
    NO_SUCH_JOB = "no_such_job"
    SHUTTING_DOWN = "shutting_down"
    LIBRARY_UNAVAILABLE = "library_unavailable"  # the library could not be opened (message says why)
    QUERY_ERROR = "query_error"  # a bad search, unknown folder or photo
    MODEL_NOT_AVAILABLE = "model_not_available"  # not downloaded; download or import it
    MODEL_ERROR = "model_error"
    DATABASE_ERROR = "database_error"
    DECODE_ERROR = "decode_error"
    TRAINING_DATA = "training_data"  # too little (or unusable) data to fine-tune; says how much is needed
    CANCELLED = "cancelled"
    ENGINE_ERROR = "engine_error"  # any other error the engine raised on purpose
    INTERNAL_ERROR = "internal_error"  # a bug: the traceback is on the engine's stderr
    ENGINE_DIED = "engine_died"  # client side only: the engine process went away


# -- encoding and checking ---------------------------------------------------------------


class ProtocolError(Exception):
    """A message that breaks the protocol. ``code`` is an :class:`ErrorCode` value;
    ``id`` is the request id when it could be read (so the reply can name it)."""

    def __init__(self, code: str, message: str, id: int | str | None = None):
        super().__init__(message)
        self.code, self.message, self.id = code, message, id


def encode(msg: dict[str, Any]) -> bytes:
    """One message as one line of UTF-8 JSON (newline included)."""
    text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
    try:
        return (text + "\n").encode()
    except UnicodeEncodeError:
        # A lone surrogate (a client sent "\udcff", or a file name that is not UTF-8) has no
        # UTF-8 form; JSON's \u escapes carry it, so the message still goes out whole.
        return (json.dumps(msg, ensure_ascii=True, separators=(",", ":"), default=_jsonable) + "\n").encode()


def _jsonable(o: Any) -> Any:
    # numpy scalars and paths slip into results easily; everything else is a bug.
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "__fspath__"):
        return str(o)
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def request(id: int | str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": id, "method": method, "params": params or {}}


def reply(id: int | str | None, result: Any) -> dict[str, Any]:
    return {"id": id, "result": result}


def error_reply(id: int | str | None, code: str, message: str) -> dict[str, Any]:
    return {"id": id, "error": {"code": code, "message": message}}


def event(name: str, data: Any, job: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"event": name, "data": data}
    if job is not None:
        msg["job"] = job
    return msg


_ID_PREFIX = re.compile(rb'^\s*\{\s*"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,128}")')


def sniff_id(prefix: bytes) -> int | str | None:
    """The id of a request that cannot be parsed whole (oversized), when it comes first."""
    m = _ID_PREFIX.match(prefix)
    if not m:
        return None
    raw = m.group(1)
    return raw[1:-1].decode("utf-8", "replace") if raw.startswith(b'"') else int(raw)


def decode_line(line: bytes) -> dict[str, Any]:
    """Parse one line into a JSON object, or raise ProtocolError(parse_error/too_large)."""
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"message over {MAX_LINE_BYTES} bytes", sniff_id(line[:256]))
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(ErrorCode.PARSE_ERROR, f"message is not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        msg = json.loads(text)
    except RecursionError:
        raise ProtocolError(ErrorCode.PARSE_ERROR, "message is nested too deeply") from None
    except ValueError as e:
        raise ProtocolError(ErrorCode.PARSE_ERROR, f"message is not JSON: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, f"a message must be a JSON object, not {type(msg).__name__}")
    return msg


def parse_request(msg: dict[str, Any]) -> tuple[int | str, str, dict[str, Any]]:
    """Check a request's envelope and its params against METHODS; returns (id, method, params)."""
    rid = msg.get("id")
    if isinstance(rid, bool) or not isinstance(rid, int | str) or (isinstance(rid, str) and len(rid) > MAX_ID_CHARS):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, f"a request needs an integer or short string id, got {rid!r:.60}")
    method = msg.get("method")
    if not isinstance(method, str):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "a request needs a method name", rid)
    if method not in METHODS:
        raise ProtocolError(ErrorCode.UNKNOWN_METHOD, f"unknown method {method[:60]!r}", rid)
    params = msg.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(ErrorCode.INVALID_PARAMS, f"params of {method} must be an object", rid)
    if not _is_text(params):
        # JSON's \u escapes can spell a lone surrogate, which is no character at all (I-JSON,
        # RFC 7493, forbids it); refused here rather than deep inside a handler.
        raise ProtocolError(ErrorCode.INVALID_PARAMS, f"{method}: params hold a lone surrogate (not text)", rid)
    try:
        check(params, METHODS[method][0], "params")
    except ProtocolError as e:
        raise ProtocolError(e.code, f"{method}: {e.message}", rid) from None
    return rid, method, params


def _is_text(value: Any) -> bool:
    """Whether every string in a decoded JSON value has a UTF-8 form (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check(value: Any, shape: Any, where: str = "value") -> None:
    """Raise ProtocolError(invalid_params) unless `value` has `shape` (a TypedDict or type)."""
    origin = typing.get_origin(shape)
    if shape is Any:
        return
    if _is_typeddict(shape):
        if not isinstance(value, dict):
            raise _bad(where, "an object", value)
        hints = _hints(shape)
        for key in shape.__required_keys__:
            if key not in value:
                raise ProtocolError(ErrorCode.INVALID_PARAMS, f"{where}.{key} is missing")
        for key, v in value.items():
            if key not in hints:
                raise ProtocolError(ErrorCode.INVALID_PARAMS, f"unknown parameter {where}.{str(key)[:60]}")
            check(v, hints[key], f"{where}.{key}")
        return
    if origin is typing.Union or origin is types.UnionType:
        errors = []
        for alt in typing.get_args(shape):
            try:
                check(value, alt, where)
                return
            except ProtocolError as e:
                errors.append(e)
        raise _bad(where, " or ".join(_name(a) for a in typing.get_args(shape)), value)
    if origin is Literal:
        if value not in typing.get_args(shape) or isinstance(value, bool):
            raise _bad(where, "one of " + ", ".join(map(repr, typing.get_args(shape))), value)
        return
    if origin is list:
        if not isinstance(value, list):
            raise _bad(where, "a list", value)
        (item,) = typing.get_args(shape) or (Any,)
        for n, v in enumerate(value):
            check(v, item, f"{where}[{n}]")
        return
    if origin is dict or shape is dict:
        if not isinstance(value, dict):
            raise _bad(where, "an object", value)
        return
    if shape is type(None) or shape is None:
        if value is not None:
            raise _bad(where, "null", value)
        return
    if shape is bool:
        if not isinstance(value, bool):
            raise _bad(where, "true or false", value)
        return
    if shape is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(where, "an integer", value)
        return
    if shape is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(where, "a number", value)
        return
    if shape is str:
        if not isinstance(value, str):
            raise _bad(where, "a string", value)
        return
    raise TypeError(f"protocol.check cannot check {shape!r}")  # a bug in this module


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(td: type) -> dict[str, Any]:
    h = _HINTS.get(td)
    if h is None:
        h = _HINTS[td] = typing.get_type_hints(td)
    return h


def _is_typeddict(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, dict) and hasattr(t, "__required_keys__")


def _name(t: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            type(None): "null"}.get(t, getattr(t, "__name__", str(t)))  # fmt: skip


def _bad(where: str, wanted: str, got: Any) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_PARAMS, f"{where} must be {wanted}, not {json.dumps(got, default=str)[:60]}")

