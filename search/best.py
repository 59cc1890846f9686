"""`search best`: the best trials as a table, with their MLflow run ids; no Keras needed."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import FrozenTrial

from search.attrs import Study, Trial
from search.params import TrialParams
from search.records import shown_params
from search.study import best_first, load_study


def best_table(study_name: str, *, storage: str | None, home: str | Path, n: int = 10) -> str:
    """The `n` best complete trials, best first, with their run ids; `selected` marks the
    trial the last selection chose and `@champion` the registered champion's trial."""
    study = load_study(study_name, storage, Path(home))
    done = best_first(study)
    metric = study.user_attrs.get(Study.METRIC, "value")
    if not done:
        return f"study {study_name!r}: no complete trial yet"
    shown = done[:n]
    keys = list(dict.fromkeys(k for t in shown for k in shown_params(_params(t))))
    spread = any(len(t.user_attrs.get(Trial.FOLD_SCORES, [])) > 1 for t in shown)
    header = ["trial", metric, *(["±"] if spread else []), "mlflow run", "", *keys]
    rows = [header]
    for t in shown:
        params = shown_params(_params(t))
        rows.append(
            [
                str(t.number),
                f"{t.value:.4f}",
                *([f"{t.user_attrs.get('score_std', 0):.4f}"] if spread else []),
                str(t.user_attrs.get(Trial.RUN_ID, "")),
                _marks(study.user_attrs, t.number),
                *[_fmt(params.get(k, "")) for k in keys],
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(
        [f"study {study_name!r}: {len(done)} complete trials, best {len(shown)}:", *lines]
    )


def _params(trial: FrozenTrial) -> TrialParams:
    return TrialParams.read(trial.user_attrs.get(Trial.PARAMS, {"widths": []}))


def _marks(attrs: dict[str, object], number: int) -> str:
    marks = []
    for key, word in (("selected", "selected"), ("champion", "@champion")):
        mark = attrs.get(key)
        if isinstance(mark, dict) and mark.get("trial") == number:
            marks.append(word)
    return " ".join(marks)


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
