"""Torch work as a child process. The engine never imports training (nor torch): what needs
them, fine-tuning (engine.finetune.job) and converting downloaded weights to ONNX
(engine.models.convert), runs as ``python -m training.<module>`` from source, or, in a frozen
bundle (which has no ``-m``), as the bundle's own executable in a role of its own
(packaging/photosift_entry.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def child_command(module: str, frozen_role: str, python: str | None = None) -> list[str]:
    """``python -m module`` from source; the installed app's own executable with
    ``frozen_role`` when frozen. ``python``: another interpreter (from source only)."""
    if python is None and getattr(sys, "frozen", False):
        return [sys.executable, frozen_role]
    return [python or sys.executable, "-m", module]


def child_env() -> dict[str, str]:
    """This environment, with the checkout first on PYTHONPATH (the child imports engine and
    training) and unbuffered output (its lines arrive as they are written)."""
    env = frozen_self(dict(os.environ))
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def frozen_self(env: dict[str, str]) -> dict[str, str]:
    """``env`` for the frozen app starting its own executable in another role (the engine, a
    torch job): a PyInstaller bootloader that finds its parent's markers in the environment
    takes itself for that process's helper and sets up no library paths of its own (measured:
    the engine then fails to load numpy's OpenBLAS); PyInstaller's documented switch makes it
    start as an independent program. Unchanged when not frozen."""
    if getattr(sys, "frozen", False):
        env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    return env
