"""What a person looks at: the best trials as a table, and the study report (PNG + HTML)."""

from __future__ import annotations

import base64
import contextlib
import html
import io
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from search.attrs import Study, Trial
from search.best import best_table
from search.errors import InputError
from search.metrics import DATA_LOSS
from search.study import DEFAULT_HOME, best_first, load_study
from search.tracking import Tracker, default_tracking_uri

# ---------------------------------------------------------------- the study report


@dataclass
class Report:
    """PNG figures and one self-contained HTML page, logged to the study's parent run."""

    figures: dict[str, bytes] = field(default_factory=dict, repr=False)
    html: str = field(default="", repr=False)
    skipped: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        drawn = ", ".join(f"{k} ({len(v) // 1024} KiB)" for k, v in self.figures.items())
        return f"Report(figures: {drawn or 'none'}; skipped: {sorted(self.skipped) or 'none'})"

    def _repr_html_(self) -> str:
        """The page itself, in a notebook."""
        return self.html


SECTIONS = {
    "history": "Optimization history",
    "importances": "Parameter importances",
    "parallel": "Parallel coordinates",
    "curves": "Learning curves (validation loss) of the best and of pruned trials",
    "folds": "Fold scores of the best trials",
    "overfitting": "Training and validation loss per epoch (a regression: MAE in the target's "
    "units), the mean over folds (best trials)",
}


def study_report(
    study_name: str,
    *,
    storage: str | None = None,
    home: str | Path = DEFAULT_HOME,
    tracking_uri: str | None = None,
) -> Report:
    """Draw the study's figures, write the HTML page and log both to the study run.

    Matplotlib's backend is left as it is (a notebook keeps its inline plots): the figures
    are drawn off screen and closed.
    """
    home = Path(home)
    study = load_study(study_name, storage, home)
    tracker = Tracker(
        tracking_uri or default_tracking_uri(home), study_name, artifact_root=home / "artifacts"
    )
    report = Report()
    draw: dict[str, Callable[[], Any]] = {
        "history": lambda: ov.plot_optimization_history(study),
        "importances": lambda: ov.plot_param_importances(study),
        "parallel": lambda: ov.plot_parallel_coordinate(study, params=_important(study, 5)),
        "curves": lambda: _curves(study, tracker),
        "folds": lambda: _folds(study),
        "overfitting": lambda: _overfitting(study, tracker),
    }
    import optuna.visualization.matplotlib as ov

    with warnings.catch_warnings(), _raster_backend():
        warnings.simplefilter("ignore")
        for key, fn in draw.items():
            try:
                report.figures[key] = _png(fn())
            except Exception as exc:  # a figure that cannot be drawn yet (too few trials)
                report.skipped[key] = f"{type(exc).__name__}: {exc}"
    table = best_table(study_name, storage=storage, home=home, n=10)
    report.html = _html(study, report, _final_table(study, tracker), table)
    parent = study.user_attrs.get(Study.RUN_ID)
    if parent:
        for key, data in report.figures.items():
            tracker.log_image(parent, _image(data), f"report/{key}.png")
        tracker.log_text(parent, report.html, "report/report.html")
        tracker.flush()
    return report


@contextlib.contextmanager
def _raster_backend() -> Iterator[None]:
    """Optuna's plots need a raster canvas: Agg for the figures, the caller's backend back
    after (a notebook's inline backend is Agg already and is left alone)."""
    import matplotlib
    import matplotlib.pyplot as plt

    current = matplotlib.get_backend()
    if "agg" in current.lower() or "inline" in current.lower():
        yield
        return
    plt.switch_backend("Agg")
    try:
        yield
    finally:
        plt.switch_backend(current)


def _important(study: optuna.Study, n: int = 6) -> list[str] | None:
    try:
        return list(optuna.importance.get_param_importances(study))[:n]
    except Exception:  # too few trials for importances: plot every parameter
        return None


def _png(obj: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig = obj.figure if hasattr(obj, "figure") and obj.figure is not None else obj
    if isinstance(obj, np.ndarray):  # some Optuna plots return an array of axes
        fig = obj.flat[0].figure
    buffer = io.BytesIO()
    fig.set_size_inches(10, 5.5)
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _image(data: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def _curves(study: optuna.Study, tracker: Tracker) -> Any:
    import matplotlib.pyplot as plt

    trials = study.get_trials(deepcopy=False)
    done = best_first(study)[:5]
    pruned = [t for t in trials if t.state == TrialState.PRUNED][:5]
    reader = tracker.reader
    fig, ax = plt.subplots()
    for t, style in [*((t, "-") for t in done), *((t, ":") for t in pruned)]:
        run = t.user_attrs.get(Trial.RUN_ID)
        if not run:
            continue
        # the loss early stopping followed; studies from before it was logged: Keras' own
        history = reader.history(run, f"fold_0/{DATA_LOSS}") or reader.history(
            run, "fold_0/val_loss"
        )
        if history:
            label = f"trial {t.number}" + (" (pruned)" if style == ":" else "")
            ax.plot([m.step + 1 for m in history], [m.value for m in history], style, label=label)
    ax.set_xlabel("epoch (fold 0)")
    ax.set_ylabel("validation loss (without the L1/L2 penalty)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig


def fold_curves(tracker: Tracker, run: str, key: str) -> list[list[float]]:
    """A trial's per-epoch `key` for each of its folds, in fold order."""
    curves, reader = [], tracker.reader
    for fold in range(1000):
        history = reader.history(run, f"fold_{fold}/{key}")
        if not history:
            break
        curves.append([m.value for m in sorted(history, key=lambda m: m.step)])
    return curves


def mean_curve(curves: list[list[float]]) -> np.ndarray:
    """The per-epoch mean over the folds that reached each epoch (folds stop early at
    different epochs): the course's k-fold curve."""
    length = max(len(c) for c in curves)
    padded = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        padded[i, : len(curve)] = curve
    mean: np.ndarray = np.nanmean(padded, axis=0)
    return mean


def _overfitting(study: optuna.Study, tracker: Tracker) -> Any:
    """Training and validation per epoch side by side, for the best trials: where
    validation turns up while training goes on down, overfitting starts. A regression's
    MAE (`mae`, `val_mae`: in the target's own units); else Keras' `loss` and `val_loss`
    (with the L1/L2 penalty: the pair Keras' History gives)."""
    import matplotlib.pyplot as plt

    fig, (train_ax, val_ax) = plt.subplots(1, 2, sharey=True)
    runs = [(t, str(t.user_attrs[Trial.RUN_ID])) for t in best_first(study)[:4]
            if t.user_attrs.get(Trial.RUN_ID)]  # fmt: skip
    units = bool(runs) and bool(fold_curves(tracker, runs[0][1], "val_mae"))
    keys = ("mae", "val_mae") if units else ("loss", "val_loss")
    drawn = 0
    for t, run in runs:
        for ax, key in zip((train_ax, val_ax), keys, strict=True):
            curves = fold_curves(tracker, run, key)
            if not curves:
                continue
            for curve in curves:
                ax.plot(range(1, len(curve) + 1), curve, color=f"C{drawn}", alpha=0.2, lw=0.8)
            mean = mean_curve(curves)
            ax.plot(range(1, len(mean) + 1), mean, color=f"C{drawn}", label=f"trial {t.number}")
        drawn += 1
    if not drawn:
        raise ValueError("no trial with per-epoch losses")
    what = "MAE" if units else "loss"
    train_ax.set_title(f"training {what}")
    val_ax.set_title(f"validation {what}")
    for ax in (train_ax, val_ax):
        ax.set_xlabel("epoch (thin: each fold; thick: their mean)")
        ax.set_yscale("log")
    train_ax.set_ylabel(OVERFITTING_UNITS[units])
    val_ax.legend(fontsize=8)
    return fig


OVERFITTING_UNITS = {
    True: "mean absolute error, in the target's units",
    False: "Keras' loss (with the L1/L2 penalty)",
}


def _folds(study: optuna.Study) -> Any:
    import matplotlib.pyplot as plt

    done = [t for t in best_first(study) if t.user_attrs.get(Trial.FOLD_SCORES)][:8]
    if not done:
        raise ValueError("no complete trial with fold scores")
    fig, ax = plt.subplots()
    ax.boxplot(
        [t.user_attrs[Trial.FOLD_SCORES] for t in done], tick_labels=[str(t.number) for t in done]
    )
    for i, t in enumerate(done, start=1):
        scores = t.user_attrs[Trial.FOLD_SCORES]
        ax.plot([i] * len(scores), scores, "o", alpha=0.6)
    ax.set_xlabel("trial (best first)")
    ax.set_ylabel(study.user_attrs.get(Study.METRIC, "score") + " per fold")
    return fig


def _final_table(study: optuna.Study, tracker: Tracker) -> str:
    reader = tracker.reader
    latest = reader.latest(tracker.experiment_id, "selection")
    if latest is None:
        return "no final model yet: run `search select STUDY`"
    try:
        return reader.text(latest.info.run_id, "final_test.txt")
    except InputError:
        return "the selection run has no final test table"


FEW_FOR_IMPORTANCES = 20  # fANOVA on fewer complete trials ranks parameters by chance


def _html(study: optuna.Study, report: Report, final: str, table: str) -> str:
    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    complete = counts.get("complete", 0)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Study "
        f"{html.escape(study.study_name)}</title><style>body{{font-family:sans-serif;"
        "max-width:60em;margin:auto}pre{background:#f4f4f4;padding:1em}</style></head>"
        f"<body><h1>Study {html.escape(study.study_name)}</h1>",
        "<p>" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + " trials</p>",
        f"<h2 id='final-test'>Final test</h2><pre>{html.escape(final)}</pre>",
        "<h2 id='best-trials'>Best trials (MLflow run ids: `search reproduce RUN_ID`)</h2>"
        f"<pre>{html.escape(table)}</pre>",
    ]
    for key, title in SECTIONS.items():
        parts.append(f"<h2 id='{key}'>{html.escape(title)}</h2>")
        if key == "importances" and complete < FEW_FOR_IMPORTANCES:
            parts.append(
                f"<p><b>weak:</b> drawn from {complete} complete trials; importances need "
                f"about {FEW_FOR_IMPORTANCES} or more to say much.</p>"
            )
        if key in report.figures:
            data = base64.b64encode(report.figures[key]).decode()
            parts.append(f"<img alt='{key}' src='data:image/png;base64,{data}'>")
        else:
            parts.append(f"<p>not drawn: {html.escape(report.skipped.get(key, ''))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
