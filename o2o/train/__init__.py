"""Training: the offline loop, evaluation, run directories and checkpoints."""
