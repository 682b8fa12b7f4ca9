"""The ``photosift`` command line (``python -m engine.cli``): the commands and their parser,
the tag and vocabulary commands, and what they share. Library code raises typed errors;
the command line decides what users see."""

from .commands import main

__all__ = ["main"]
