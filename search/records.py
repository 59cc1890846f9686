"""The flat forms of a trial's records for MLflow: parameters as columns, history as CSV."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from search.params import SCHEMA, TrialParams

if TYPE_CHECKING:
    from search.engines.base import FoldResult


def flat_params(params: TrialParams) -> dict[str, Any]:
    """The knobs the trial set, one MLflow column each: one per layer for a per-layer
    knob, `hp.NAME` for a hypermodel's values, and the record's schema version."""
    hidden = ("widths", "dropouts", "l1s", "l2s", "hp", "hypermodel_dir", "hypermodel_compiles")
    values = params.model_dump(mode="json", exclude_unset=True)
    flat = {k: v for k, v in values.items() if k not in hidden}
    flat.update({f"hp.{k}": v for k, v in params.hp.items()})
    flat["schema"] = SCHEMA
    if params.hypermodel is not None:  # only what applied: not the MLP's own architecture,
        unused = {"depth", "activation", "dropout", "l1", "l2", "batch_norm"}
        if params.compiles_own:  # and not the optimizer of a self-compiled model
            unused |= {"optimizer", "learning_rate", "momentum", "nesterov", "weight_decay"}
            unused |= {"beta_1", "beta_2", "epsilon", "loss"}
        return {k: v for k, v in flat.items() if k not in unused}
    flat.update({f"width_{i}": w for i, w in enumerate(params.widths)})
    per_layer = {"dropout": params.dropouts, "l1": params.l1s, "l2": params.l2s}
    for name, layers in per_layer.items():
        flat.update({f"{name}_{i}": v for i, v in enumerate(layers)})
    return flat


def shown_params(params: TrialParams) -> dict[str, Any]:
    """A trial's parameters as a person reads them: one `width` when the layers share it,
    no run settings (precision, the schema)."""
    flat = {k: v for k, v in flat_params(params).items() if k not in ("precision", "schema")}
    widths = params.widths if params.hypermodel is None else ()
    if len(set(widths)) != 1:
        return flat
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if not key.startswith("width_"):
            out[key] = value
        if key == "depth":
            out["width"] = widths[0]
    return out


def history_csv(results: list[FoldResult]) -> str:
    keys = sorted({k for r in results for k in r.history})
    out = io.StringIO()
    out.write(",".join(["fold", "epoch", *keys]) + "\n")
    for r in results:
        for e in range(r.epochs):
            row = [str(r.history[k][e]) if e < len(r.history.get(k, [])) else "" for k in keys]
            out.write(",".join([str(r.index), str(e + 1), *row]) + "\n")
    return out.getvalue()
