"""Which files are photos: the file types photosift reads, by extension (standard library only).

The scanner and the watcher look only at these extensions; decoding then goes by content
(engine.photos.decode) or through LibRaw for camera RAW files (engine.photos.raw). The app reads these lists
through engine.service.protocol for its type filter, so both sides agree without the app importing
any decoder.
"""

from __future__ import annotations

#: Formats read through Pillow (+ pillow-heif): everything a photo library may hold that the
#: allow-list in engine.photos.decode parses. PNM/PBM/PGM/PPM/PFM are the netpbm family rclip reads too.
PILLOW_EXTENSIONS: frozenset[str] = frozenset(
    {
        "jpg", "jpeg", "jpe", "jfif", "jif",
        "png", "apng",
        "gif",
        "webp",
        "heic", "heif", "hif", "heics", "heifs",
        "avif", "avifs",
        "tif", "tiff",
        "bmp", "dib",
        "mpo",
        "jp2", "j2k", "j2c", "jpc", "jpf", "jpx",
        "qoi",
        "psd",
        "pnm", "pbm", "pgm", "ppm", "pfm",
    }
)  # fmt: skip

#: Camera RAW formats read through LibRaw (rawpy). Kodak/Kyocera/Leica/Panasonic all used
#: ".raw"; GoPro's ".gpr" is listed so that it is recorded with a reason (VC-5, which the
#: LibRaw in rawpy's wheels does not decode) rather than silently skipped.
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        "dng",                                  # Adobe DNG (phones, Leica, Pentax, Ricoh, converters)
        "cr2", "cr3", "crw",                    # Canon
        "nef", "nrw",                           # Nikon
        "arw", "srf", "sr2",                    # Sony
        "orf",                                  # Olympus / OM System
        "rw2", "rwl", "raw",                    # Panasonic, Leica, and ".raw" of several makers
        "raf",                                  # Fujifilm
        "pef",                                  # Pentax
        "srw",                                  # Samsung
        "3fr", "fff",                           # Hasselblad
        "erf",                                  # Epson
        "kdc", "dcr", "k25",                    # Kodak
        "mrw",                                  # Minolta
        "x3f",                                  # Sigma (Foveon)
        "iiq", "cap", "eip",                    # Phase One
        "mos",                                  # Leaf
        "mef",                                  # Mamiya
        "gpr",                                  # GoPro
    }
)  # fmt: skip

#: What a camera writes beside a RAW of the same name ("RAW + JPEG"): the picture shown for the
#: pair (engine.pairs).
PAIR_EXTENSIONS: frozenset[str] = frozenset({"jpg", "jpeg", "jpe", "heic", "heif", "hif"})

#: Every extension the scanner treats as a photo (lower case, no dot).
PHOTO_EXTENSIONS: frozenset[str] = PILLOW_EXTENSIONS | RAW_EXTENSIONS


def extension(path: str) -> str:
    """The lower-case extension of a path or name without the dot ('' when there is none)."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot + 1 :].lower() if dot > 0 else ""


def is_raw(path: str) -> bool:
    """Whether ``path`` names a camera RAW file (by extension: RAW containers are mostly TIFF
    inside, so content alone cannot tell a NEF from a TIFF)."""
    return extension(str(path)) in RAW_EXTENSIONS
