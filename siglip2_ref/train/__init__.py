"""Training reference: the backward pass in NumPy, the ring-chunked sigmoid loss, SGD/AdamW (docs/training.md).

    from siglip2_ref.train import AdamW, loss_and_grads
    loss, grads = loss_and_grads(model, batch)         # grads: model.params' tree and key names
"""

from .grads import flatten, loss_and_grads
from .optim import SGD, AdamW

__all__ = ["loss_and_grads", "flatten", "SGD", "AdamW"]
