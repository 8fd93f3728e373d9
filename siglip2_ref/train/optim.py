"""SGD and AdamW on parameter trees, written to match torch.optim.SGD / torch.optim.AdamW step for step.

    opt = AdamW(lr=1e-3, weight_decay=1e-4)
    state = opt.init(model.params)
    model.params, state = opt.step(model.params, grads, state)    # returns new trees; nothing is changed in place

A tree is model.params' nested dicts and lists; grads (train/grads.py) has the same structure.
"""

from dataclasses import dataclass

from ..backend import get_xp


def tree_map(fn, *trees):
    """fn applied leaf by leaf to trees of the same structure (dicts and lists of arrays)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: tree_map(fn, *(t[k] for t in trees)) for k in first}
    if isinstance(first, list):
        return [tree_map(fn, *(t[i] for t in trees)) for i in range(len(first))]
    return fn(*trees)


def unzip(tree, n):
    """A tree of n-tuples -> n trees."""
    if isinstance(tree, dict):
        parts = [unzip(v, n) for v in tree.values()]
        return tuple({k: p[i] for k, p in zip(tree, parts)} for i in range(n))
    if isinstance(tree, list):
        parts = [unzip(v, n) for v in tree]
        return tuple([p[i] for p in parts] for i in range(n))
    return tree


@dataclass(frozen=True)
class SGD:
    """torch.optim.SGD (dampening 0, no Nesterov): g += wd p; buf = momentum buf + g (buf = g at step 1); p -= lr buf."""

    lr: float = 1e-2
    momentum: float = 0.0
    weight_decay: float = 0.0

    def init(self, params):
        return {"step": 0, "momentum": tree_map(lambda p: None, params)}

    def _leaf(self, p, g, buf, step):
        g = g + self.weight_decay * p if self.weight_decay else g
        if self.momentum:
            buf = g if step == 1 else self.momentum * buf + g
            g = buf
        return p - self.lr * g, buf

    def step(self, params, grads, state):
        step = state["step"] + 1
        new = tree_map(lambda p, g, b: self._leaf(p, g, b, step), params, grads, state["momentum"])
        params, momentum = unzip(new, 2)
        return params, {"step": step, "momentum": momentum}


@dataclass(frozen=True)
class AdamW:
    """torch.optim.AdamW (amsgrad off): decoupled decay p *= 1 - lr wd, then the bias-corrected Adam update

    m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,  p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2

    def init(self, params):
        zeros = tree_map(lambda p: get_xp(p).zeros_like(p), params)
        return {"step": 0, "m": zeros, "v": tree_map(lambda z: z.copy(), zeros)}

    def _leaf(self, p, g, m, v, step):
        xp = get_xp(p)
        b1, b2 = self.betas
        p = p * (1 - self.lr * self.weight_decay)
        m = m + (g - m) * (1 - b1)  # torch's lerp
        v = v * b2 + (1 - b2) * g * g
        denom = xp.sqrt(v) / (1 - b2**step) ** 0.5 + self.eps
        return (p - (self.lr / (1 - b1**step)) * m / denom).astype(p.dtype), m, v

    def step(self, params, grads, state):
        step = state["step"] + 1
        new = tree_map(lambda p, g, m, v: self._leaf(p, g, m, v, step), params, grads, state["m"], state["v"])
        params, m, v = unzip(new, 3)
        return params, {"step": step, "m": m, "v": v}
