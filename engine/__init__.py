"""photosift engine: Qt-free core for indexing and searching photo libraries.

One folder per concern: ``models`` (registry, downloads, runtime), ``photos`` (reading
files), ``store`` (what is kept on disk), ``index`` (scanning, the pipeline, the watcher),
``tags``, ``xmp``, ``finetune`` (what the training child is handed), ``service`` (the engine
process and its protocol), ``cli`` and ``bench``; ``library`` and ``search`` tie them together.
README's Architecture section has the picture of which imports which.

Importing this package is cheap; heavy modules (onnxruntime, hnswlib) are
imported by the modules that need them.
"""

__version__ = "0.1.0"
