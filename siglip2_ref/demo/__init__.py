"""Tiny demo SigLIP 2 checkpoints trained on synthetic coloured shapes, shipped so that everything runs offline.

`DEMO_NAFLEX` (model_type "siglip2") and `DEMO_FIXRES` (model_type "siglip") are checkpoint folders in the
official Hugging Face layout; `siglip2_ref.load_model(DEMO_NAFLEX)` loads one like any real checkpoint.
They know only colours x shapes x positions (see `shapes.py` and README.md); golden/train_demo.py made them.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_NAFLEX = os.path.join(HERE, "naflex")
DEMO_FIXRES = os.path.join(HERE, "fixres")
EXAMPLE_IMAGE = os.path.join(HERE, "example.png")

_PATHS = {"naflex": DEMO_NAFLEX, "fixres": DEMO_FIXRES}


def demo_path(variant="naflex"):
    """Folder of the demo checkpoint `variant` ("naflex" or "fixres")."""
    if variant not in _PATHS:
        raise ValueError(f"unknown demo variant {variant!r}; expected one of {sorted(_PATHS)}")
    return _PATHS[variant]
