"""A regression target standardized for training, in its own units everywhere else.

The built-in MLP trains on `(y - mean) / std` of the rows it trains on (a fold's
training rows; all training rows at refit), so its linear head starts near the answer
and every learning rate, L1/L2 strength and early-stopping patience means the same
whatever the target's units. Once trained, the inverse is folded into the output layer's
kernel and bias: the network itself predicts in the target's units, as do its scores,
its per-epoch `mae` and `val_data_loss`, and the champion. Hypermodels get the raw target:
their head and loss are theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from search.metrics import DATA_LOSS
from search.params import TrialParams

# Per-epoch log keys in the target's units, and the one that scales as the loss does.
_LINEAR = ("mae", "val_mae")
_DATA_LOSS = (DATA_LOSS,)


@dataclass(frozen=True)
class TargetScale:
    """`y = shift + scale * z`: the network learns z, the world sees y."""

    shift: float
    scale: float

    @classmethod
    def of(cls, y: np.ndarray) -> TargetScale:
        """Mean and standard deviation of the rows given (and only those)."""
        values = np.asarray(y, dtype=np.float64)
        std = float(values.std())
        return cls(float(values.mean()), std if std > 1e-12 else 1.0)

    def forward(self, y: np.ndarray) -> np.ndarray:
        """The target as the network learns it."""
        return ((np.asarray(y, dtype=np.float64) - self.shift) / self.scale).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, dtype=np.float64) * self.scale + self.shift).astype(np.float32)

    def fold(self, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An output layer's kernel and bias that predict y where the given ones predict z."""
        k = (np.asarray(kernel, dtype=np.float64) * self.scale).astype(np.float32)
        b = (np.asarray(bias, dtype=np.float64) * self.scale + self.shift).astype(np.float32)
        return k, b

    def fold_into(self, model: Any) -> None:
        """Rewrite the built-in MLP's `output` layer in place (see `fold`)."""
        layer = model.get_layer("output")
        layer.set_weights(list(self.fold(*layer.get_weights())))

    def logs(self, logs: dict[str, Any], power: int = 2) -> None:
        """An epoch's logs in the target's units (in place): `mae`, `val_mae` and
        `val_data_loss` (MSE: `power` 2; MAE: 1; Huber and log-cosh do not scale: 0).
        `loss` and `val_loss`, what the optimizer minimized with its L1/L2 penalty, stay
        on the standardized target."""
        for key in _LINEAR:
            if key in logs:
                logs[key] = float(logs[key]) * self.scale
        for key in _DATA_LOSS:
            if key in logs:
                logs[key] = float(logs[key]) * self.scale**power


def target_scale(params: TrialParams, y_train: np.ndarray) -> TargetScale | None:
    """The scale a member trains with: a regression target (float) of the built-in MLP."""
    if params.hypermodel or not np.issubdtype(np.asarray(y_train).dtype, np.floating):
        return None
    return TargetScale.of(y_train)
