"""Hyperparameter sweeps with Ray Tune over the LoRA training job (``python -m tune``)."""
