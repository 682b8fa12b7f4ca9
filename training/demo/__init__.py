"""The demo model, made here: its procedural world of coloured shapes and their captions, its
tokenizer and training recipe, pretraining, held-out evaluation, the bundled model folder it
becomes (resources/demo), and its NaFlex variant."""
