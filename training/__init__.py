"""Trident training: the multi-task model, its losses, datasets and evaluation."""
