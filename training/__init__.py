"""Training: ``python -m training.run``, its tasks, and the experiments that reproduce the studies."""
