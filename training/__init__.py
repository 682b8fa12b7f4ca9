"""Training-side code: the demo model and its world, export to ONNX, SigLIT fine-tuning, and
random-weight models for tests and benchmarks.

The only package (with tests) that needs torch + open_clip at run time; the engine consumes
what it produces (model folders) through ONNX Runtime and never imports it: torch work the
engine asks for runs as a child process (``python -m training.finetune.siglit.job``,
``python -m training.export.openclip.convert``).
"""
