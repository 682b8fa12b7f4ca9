"""What the command line's commands share: exit codes, the progress bar, opening the library
(holding its one-writer lock until the command ends)."""

from __future__ import annotations

import contextlib
import sys

EXIT_ERROR = 1
EXIT_CANCELLED = 130


def fmt_eta(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Bar:
    """One-line progress bar on stderr (only when it is a terminal, or when asked)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        width = 30
        fill = int(width * p.fraction)
        line = (
            f"\r[{'#' * fill}{'.' * (width - fill)}] {p.done}/{p.total} "
            f"{p.rate:5.1f}/s ETA {fmt_eta(p.eta_s)} failed {p.failed}"
        )
        sys.stderr.write(line)
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def open_library(args, *, one_shot: bool = False):
    from ..library import Library
    from ..settings import Settings
    from ..store.instance import InstanceLock

    settings = Settings.load(args.data_dir)
    if args.model:
        settings.model = args.model
    if getattr(args, "int8", False):
        settings.precision = "int8"
    if getattr(args, "fp32", False):
        settings.precision = "fp32"
    # One writer per library: refused clearly while the app's engine has it open.
    HELD.enter_context(InstanceLock(settings.data_dir, "command line", wait_s=0.5))
    return Library(settings, one_shot=one_shot)


HELD = contextlib.ExitStack()  # data-folder locks this command holds until it ends
