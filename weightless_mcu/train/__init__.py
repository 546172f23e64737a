"""Retraining around the errors: a numpy training engine (ops.py, network.py,
trainer.py), data loading (data.py) and the layer-by-layer Weightless
pipeline (weightless.py)."""
