"""Fine-tuning as the engine sees it: what a training set is, building one from the library
(label folders or a vocabulary's answers), and the training child process it is handed to
(``python -m training.finetune.siglit.job``), its candidate, accept or discard."""
