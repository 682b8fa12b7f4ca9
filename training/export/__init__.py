"""Torch models to photosift model folders: open_clip and SigLIP 2 NaFlex exports to ONNX with
their parity checks, tokenizer.json files, and the conversion child process the engine starts
for downloaded weights (``python -m training.export.openclip.convert``)."""
