"""The deployable model: preprocessing and network(s) in one MLflow pyfunc that takes raw rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from search.data import categorical_as_object


class ChampionModel(PythonModel):  # type: ignore[misc]
    """Raw DataFrame with the original columns -> predictions (labels and probabilities)."""

    def load_context(self, context: Any) -> None:
        import keras

        import search.model  # noqa: F401  (registers the initializer a saved network names)

        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        self.task: str = meta["task"]
        self.classes: list[str] = meta["classes"]
        self.columns: list[str] = meta["columns"]
        self.pre = joblib.load(context.artifacts["preprocessor"])
        self.nets = [
            keras.saving.load_model(context.artifacts[f"network_{i}"], compile=False)
            for i in range(meta["networks"])
        ]

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in model_input.columns]
        if missing:
            raise ValueError(
                f"input rows lack the columns {missing}; the model was trained on {self.columns}"
            )
        x = self.pre.transform(categorical_as_object(model_input[self.columns]))
        output = network_output(self.nets, x.astype(np.float32))
        return output_frame(self.task, self.classes, output)


def network_output(nets: list[Any], x: np.ndarray) -> np.ndarray:
    """Mean of the networks' outputs (one network, or the fold models of an ensemble)."""
    outs = [np.asarray(net(x, training=False), dtype=np.float64) for net in nets]
    mean: np.ndarray = np.mean(outs, axis=0)
    return mean


def output_frame(task: str, classes: list[str], output: np.ndarray) -> pd.DataFrame:
    if task == "regression":
        return pd.DataFrame({"prediction": output.reshape(-1)})
    proba = output.reshape(-1, 1) if task == "binary" else output
    if task == "binary":
        proba = np.column_stack([1 - proba[:, 0], proba[:, 0]])
    frame = pd.DataFrame({"prediction": np.asarray(classes, dtype=object)[proba.argmax(axis=1)]})
    for i, label in enumerate(classes):
        frame[f"proba_{label}"] = proba[:, i]
    return frame


def save_parts(
    folder: Path, *, pre: Any, nets: list[Any], task: str, classes: list[str], columns: list[str]
) -> dict[str, str]:
    """Write the pieces the pyfunc loads; returns MLflow's `artifacts` mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = {
        "preprocessor": str(folder / "preprocessor.joblib"),
        "meta": str(folder / "meta.json"),
    }
    joblib.dump(pre, artifacts["preprocessor"])
    meta = {"task": task, "classes": classes, "columns": columns, "networks": len(nets)}
    Path(artifacts["meta"]).write_text(json.dumps(meta))
    for i, net in enumerate(nets):
        artifacts[f"network_{i}"] = str(folder / f"network_{i}.keras")
        net.save(artifacts[f"network_{i}"])
    return artifacts
