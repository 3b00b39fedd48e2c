"""Erasure tasks: what a forget and a retain batch are for one kind of model."""
