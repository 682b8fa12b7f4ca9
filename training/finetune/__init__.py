"""SigLIT fine-tuning: the training itself, the child process the engine starts for it
(``python -m training.finetune.siglit.job``), the candidate model folder it writes, and its timing."""
