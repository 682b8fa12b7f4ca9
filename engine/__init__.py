"""photosift engine: Qt-free core for indexing and searching photo libraries.

Importing this package is cheap; heavy modules (onnxruntime, hnswlib) are
imported by the modules that need them.
"""

__version__ = "0.1.0"
