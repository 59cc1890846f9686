"""A final model's outputs: the (weighted) mean of its networks, and the frame a caller
reads (labels in the target's own type and each class's probability, or values)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def network_output(
    nets: list[Any], x: np.ndarray, weights: list[float] | None = None
) -> np.ndarray:
    """Mean of the networks' outputs (one network, the fold models of a trial, or the
    trials of an ensemble), weighted by `weights` when given."""
    outs = [np.asarray(net(x, training=False), dtype=np.float64) for net in nets]
    mean: np.ndarray = np.average(outs, axis=0, weights=weights or None)
    return mean


def output_frame(
    task: str, classes: list[str], output: np.ndarray, threshold: float = 0.5
) -> pd.DataFrame:
    """`prediction` (a binary row is the second class where its probability exceeds
    `threshold`) and `proba_<label>` per class; or the regression's values."""
    if task == "regression":
        return pd.DataFrame({"prediction": output.reshape(-1)})
    proba = output.reshape(-1, 1) if task == "binary" else output
    if task == "binary":
        proba = np.column_stack([1 - proba[:, 0], proba[:, 0]])
        codes = (proba[:, 1] > threshold).astype(int)
    else:
        codes = proba.argmax(axis=1)
    labels = np.asarray(classes)  # ints stay ints, strings strings
    frame = pd.DataFrame({"prediction": labels[codes]})
    for i, label in enumerate(classes):
        frame[f"proba_{label}"] = proba[:, i]
    return frame
