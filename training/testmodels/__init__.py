"""Models with random weights for tests and benchmarks: tiny open_clip and NaFlex models, the
registry's full-size architectures, and both laid out as the hub's publishers lay theirs out."""
