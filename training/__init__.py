"""Training-side code: export to ONNX, tiny test models, tokenizer files, fine-tuning.

The only package (with tests) that needs torch + open_clip at run time; the
engine consumes what it produces (model folders) through ONNX Runtime.
"""
