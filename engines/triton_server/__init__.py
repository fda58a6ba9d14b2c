"""The server side of `trident serve-model`: a script run by path in its own interpreter (see serve.py)."""
