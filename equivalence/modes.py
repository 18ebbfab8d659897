"""Training/evaluation flags in call kwargs, and the inputs each phase uses.

``{"is_training": false}`` means evaluation; the same call with ``True`` is
training. Inverted flags (``deterministic``, ``use_running_average``) work the
other way round. Without any such flag a model has a single mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

TRAIN_FLAGS = ("is_training", "training", "train", "is_train")
EVAL_FLAGS = ("deterministic", "use_running_average", "inference", "eval")


def mode_kwargs(kwargs: Mapping[str, Any], *, training: bool) -> dict[str, Any] | None:
    """``kwargs`` switched to training or evaluation, or None when there is no flag."""
    out = dict(kwargs)
    for name in TRAIN_FLAGS:
        if isinstance(out.get(name), bool):
            out[name] = training
            return out
    for name in EVAL_FLAGS:
        if isinstance(out.get(name), bool):
            out[name] = not training
            return out
    return None


def has_mode_flag(kwargs: Mapping[str, Any]) -> bool:
    return mode_kwargs(kwargs, training=True) is not None


def second_batch(inputs: list[Any]) -> list[Any]:
    """A batch with different statistics (for the training step after init)."""
    out = []
    for x in inputs:
        a = np.asarray(x)
        out.append((a * 1.5 + 0.25).astype(a.dtype) if a.dtype.kind == "f" else a)
    return out
