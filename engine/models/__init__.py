"""Models: what a model is (the registry), getting one onto this machine (the hub, its
publishers' layouts, resumable verified downloads, import), and running it (ONNX Runtime,
tokenizers, preprocessing, NaFlex, int8)."""
