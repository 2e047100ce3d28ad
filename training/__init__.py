"""Training: ``python -m training.run`` and the comparisons; importing it starts TensorFlow quietly
(:func:`datasets.console.quiet_start`)."""

from datasets.console import quiet_start

quiet_start()
