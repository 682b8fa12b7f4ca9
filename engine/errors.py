"""Typed errors raised by the engine. The CLI and GUI decide what the user sees."""

from __future__ import annotations


class PhotosiftError(Exception):
    """Base class: every error the engine raises on purpose."""


class DecodeError(PhotosiftError):
    """A file could not be turned into an upright RGB photo. ``str(e)`` is a one-line reason."""


class ModelError(PhotosiftError):
    """A model is unknown, missing, corrupt or inconsistent with its registry entry."""


class ModelNotAvailable(ModelError):
    """The model is neither in the local cache nor downloadable right now."""


class ChecksumMismatch(ModelError):
    """A downloaded model file is not the file its publisher hashed; the bad copy was deleted.

    ``e.file`` names the file, ``e.expected``/``e.actual`` are hex digests of ``e.algorithm``
    ("sha256", or "git-sha1" for small files the hub keeps in git), and ``e.source`` says who
    recorded the expected one ("registry" or "hub"). ``str(e)`` says what to do.
    """

    def __init__(self, message: str, *, file: str, expected: str, actual: str,
                 algorithm: str, source: str):  # fmt: skip
        super().__init__(message)
        self.file, self.expected, self.actual = file, expected, actual
        self.algorithm, self.source = algorithm, source


class DatabaseError(PhotosiftError):
    """The library database cannot be opened or used safely."""


class SchemaTooNew(DatabaseError):
    """The database was written by a newer photosift; it is left untouched."""


class DiskFull(DatabaseError):
    """A write failed because the disk is full; the failed batch was rolled back, earlier ones kept."""


class QueryError(PhotosiftError):
    """A search query is empty, absurd or refers to something that does not exist."""


class Cancelled(PhotosiftError):
    """Long work was cancelled by the caller; everything committed so far is kept."""


class MetadataError(PhotosiftError):
    """Keywords could not be read from or written to a photo or its XMP sidecar.

    ``str(e)`` names the file and the reason; ``e.path`` is that file. Nothing was changed:
    writes are atomic, so the file on disk is either the old one or the complete new one.
    """

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TrainingDataError(PhotosiftError):
    """There is too little (or unusable) data to fine-tune; the message says what is needed."""
