"""A work-around for a reference-counting bug in PySide6 6.12.0 on CPython < 3.12.

``SignalInstance.emit()`` there returns ``True`` without taking a new reference to it,
so every emit of a Python-declared signal steals one reference from ``True``. In a GUI
that emits thousands of signals (thumbnail ready, engine events, results) the count
reaches zero and the interpreter aborts with "Fatal Python error: bool_dealloc"
(reproduced: 100 emits drop ``sys.getrefcount(True)`` by exactly 100). Python 3.12+
makes ``True`` immortal, so there the bug is harmless.

``install()`` measures whether this PySide6 has the bug, and only then wraps ``emit``
to give the missing reference back. Remove this module once PySide6 is fixed (or pin a
version without the bug: then ``install()`` finds nothing to do).
"""

from __future__ import annotations

import ctypes
import sys

_installed = False


def leaks_on_emit() -> bool:
    """True when emitting a Python-declared signal loses a reference to the result."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        sig = Signal()

    p = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        p.sig.emit()
    return sys.getrefcount(True) <= before - 8


def install() -> bool:
    """Patch SignalInstance.emit if needed (idempotent). Returns whether a patch is in place."""
    global _installed
    if _installed:
        return True
    if sys.version_info >= (3, 12) or not leaks_on_emit():
        return False
    from PySide6.QtCore import SignalInstance

    original = SignalInstance.emit
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None

    def emit(self, *args):
        result = original(self, *args)
        if result is True or result is False:
            incref(result)  # the reference PySide6 forgot to take
        return result

    emit.__doc__ = original.__doc__
    SignalInstance.emit = emit
    _installed = True
    return True
