"""Networks, training, evaluation and shipped weights."""
