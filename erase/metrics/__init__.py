"""Evaluation metrics: Fréchet distances, classifier-based erasure metrics."""
