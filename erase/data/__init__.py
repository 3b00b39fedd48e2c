"""Data: prompt sets and image sources for erasure and evaluation."""
