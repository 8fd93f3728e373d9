"""The model: layers, the two towers, the two-tower head, and the loaded `Model` users hold.

Reading order: layers.py (primitives and the encoder) -> vision.py, text.py (the towers) -> head.py
(normalise, logits, sigmoid loss) -> model.py (`Model`, `load_model`). fast.py is the same encoder
arranged for speed; the readable one in layers.py is the reference.
"""

from .model import Model, load_model

__all__ = ["Model", "load_model"]
