"""The deployable model: preprocessing and network(s) in one MLflow pyfunc that takes raw rows."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from search.data.dataset import categorical_as_object
from search.models.outputs import network_output, output_frame


class ChampionModel(PythonModel):  # type: ignore[misc]
    """Raw DataFrame with the original columns -> `prediction`, one value a row (a Series:
    labels in the target's own type, or values); with `params={"output": "proba"}` a
    DataFrame of `prediction` and a `proba_<label>` column per class."""

    def load_context(self, context: Any) -> None:
        import keras

        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        self.task: str = meta["task"]
        self.classes: list[Any] = meta.get("labels") or meta["classes"]
        self.columns: list[str] = meta["columns"]
        self.pre = joblib.load(context.artifacts["preprocessor"])
        self.nets = [
            keras.saving.load_model(context.artifacts[f"network_{i}"], compile=False)
            for i in range(meta["networks"])
        ]
        self.weights: list[float] | None = meta.get("weights")
        self.threshold: float = float(meta.get("threshold", 0.5))
        shape = meta.get("input_shape")
        self.input_shape: tuple[int, ...] | None = tuple(shape) if shape else None

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame | pd.Series:
        missing = [c for c in self.columns if c not in model_input.columns]
        if missing:
            raise ValueError(
                f"input rows lack the columns {missing}; the model was trained on {self.columns}"
            )
        x = self.pre.transform(categorical_as_object(model_input[self.columns]))
        if self.input_shape is not None and len(self.input_shape) > 1:  # images, as trained
            x = x.reshape((-1, *self.input_shape))
        output = network_output(self.nets, x.astype(np.float32), self.weights)
        frame = output_frame(self.task, self.classes, output, self.threshold)
        if (params or {}).get("output", "labels") == "labels":
            return frame["prediction"]  # one value a row: what mlflow.models.evaluate expects
        return frame


def save_parts(
    folder: Path,
    *,
    pre: Any,
    nets: list[Any],
    task: str,
    classes: list[str],
    columns: list[str],
    weights: list[float] | None = None,
    threshold: float = 0.5,
    input_shape: tuple[int, ...] | None = None,
) -> dict[str, str]:
    """Write the pieces the pyfunc loads; returns MLflow's `artifacts` mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = {
        "preprocessor": str(folder / "preprocessor.joblib"),
        "meta": str(folder / "meta.json"),
    }
    joblib.dump(pre, artifacts["preprocessor"])
    meta = {
        "task": task,
        "classes": [str(c) for c in classes],
        "labels": list(classes),
        "columns": columns,
        "networks": len(nets),
        "weights": weights or None,
        "threshold": threshold,
        "input_shape": list(input_shape) if input_shape else None,
    }
    Path(artifacts["meta"]).write_text(json.dumps(meta))
    for i, net in enumerate(nets):
        artifacts[f"network_{i}"] = str(folder / f"network_{i}.keras")
        standard_initializers(net)
        net.save(artifacts[f"network_{i}"])
    return artifacts


def standard_initializers(net: Any) -> None:
    """Name Keras' own Glorot uniform where the search drew the same weights on the host
    (search.models.build.HostGlorotUniform): the saved file then opens with
    `keras.saving.load_model` alone. The weights are unchanged; only the config is."""
    import keras

    for layer in net._flatten_layers(include_self=False):
        init = getattr(layer, "kernel_initializer", None)
        if init is not None and type(init).__module__.startswith("search."):
            layer.kernel_initializer = keras.initializers.GlorotUniform()


def champion_signature(example: pd.DataFrame, output: pd.DataFrame) -> Any:
    """Raw columns in (numeric ones of any number type: integers are not refused where
    the training rows held floats), `prediction` out, and the `output` parameter."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    with warnings.catch_warnings():  # "integer columns cannot hold missing values": the
        warnings.simplefilter("ignore")  # numeric inputs are AnyType; labels are never missing
        inferred = infer_signature(example, output[["prediction"]])
    assert inferred.inputs is not None
    columns = [
        ColSpec(AnyType(), spec.name)  # type: ignore[no-untyped-call]
        if pd.api.types.is_numeric_dtype(example[spec.name])
        else spec
        for spec in inferred.inputs.inputs
    ]
    return ModelSignature(
        inputs=Schema(columns),
        outputs=inferred.outputs,
        params=ParamSchema([ParamSpec("output", "string", "labels")]),
    )
