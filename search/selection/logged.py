"""The final test as the selection run's MLflow metrics: the model, its interval, the
baseline, the linear model and the differences."""

from __future__ import annotations

from search.selection.evaluation import SelectionResult


def selection_metrics(result: SelectionResult, refit_epochs: int) -> dict[str, float]:
    """The final test as the selection run's metrics: model, interval, baseline, difference."""
    metrics: dict[str, float] = {
        "refit_epochs": refit_epochs,
        "gap": result.gap,
        "beats_baseline": float(result.beats_baseline),
    }
    for name, iv in result.linear.items():  # the linear model beside the baseline
        diff = result.versus_linear[name]
        metrics |= {
            f"linear_{name}": iv.value,
            f"linear_{name}_low": iv.low,
            f"linear_{name}_high": iv.high,
            f"diff_linear_{name}_low": diff.low,
            f"diff_linear_{name}_high": diff.high,
        }
    for name, iv in result.test.items():
        metrics |= {
            f"test_{name}": iv.value,
            f"test_{name}_low": iv.low,
            f"test_{name}_high": iv.high,
            f"baseline_{name}": result.baseline[name].value,
            f"diff_{name}_low": result.difference[name].low,
            f"diff_{name}_high": result.difference[name].high,
        }
    return metrics
