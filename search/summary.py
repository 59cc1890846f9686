"""What a search leaves behind: `SearchResult` (its summary table as `str()`), built once
from the study, and its JSON form."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import Trial
from search.params import TrialParams
from search.prepare import Prepared
from search.records import shown_params
from search.redact import mask_password
from search.study import counts
from search.tracking.parent import StudyRecorder


@dataclass(frozen=True)
class SearchResult:
    """What a search leaves behind; `str()` gives the summary table."""

    study_name: str
    metric: str
    direction: str
    best_value: float | None
    best_std: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    best_scores: dict[str, float]
    counts: dict[str, int]
    new_trials: int
    experiment_id: str
    parent_run_id: str
    tracking_uri: str
    storage: str
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    folds: int = 1  # validation folds per trial; 1 for a holdout

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        c = self.counts
        lines = [
            f"study {self.study_name!r}: {self.new_trials} new trials in "
            f"{self.elapsed_s:.0f}s; {c['complete']} complete, {c['pruned']} pruned, "
            f"{c['fail']} failed in all"
        ]
        if self.best_value is not None:
            spread = f" ± {self.best_std or 0:.4f}" if self.folds > 1 else ""  # holdout: none
            lines.append(
                f"best: trial {self.best_trial}, {self.metric} = {self.best_value:.4f}"
                f"{spread} ({self.direction})"
            )
            cv = {
                k.removeprefix("cv_"): v
                for k, v in self.best_scores.items()
                if not k.endswith("_std") and k not in ("cv_loss", f"cv_{self.metric}")
            }
            where = "cross-validated" if spread else "on the validation rows"
            lines.append(f"  {where}: " + ", ".join(f"{k} {v:.4f}" for k, v in cv.items()))
            width = max(len(k) for k in self.best_params)
            lines += [f"  {k:<{width}}  {_fmt(v)}" for k, v in self.best_params.items()]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def search_result(
    study: optuna.Study,
    new: list[FrozenTrial],
    prep: Prepared,
    recorder: StudyRecorder,
    storage: str | None,
    elapsed: float,
) -> SearchResult:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    params = (
        shown_params(TrialParams.read(best.user_attrs[Trial.PARAMS]))
        if best and Trial.PARAMS in best.user_attrs
        else {}
    )
    return SearchResult(
        study_name=study.study_name,
        metric=prep.space.objective.metric,
        direction=prep.space.direction,
        best_value=None if best is None else best.value,
        best_std=None if best is None else best.user_attrs.get(Trial.SCORE_STD),
        best_trial=None if best is None else best.number,
        best_params=params,
        best_scores={} if best is None else best.user_attrs.get(Trial.CV_SCORES, {}),
        counts=counts(study),
        new_trials=len(new),
        experiment_id=recorder.experiment_id,
        parent_run_id=recorder.run_id() or "",
        tracking_uri=mask_password(recorder.tracking_uri),
        storage=mask_password(storage) if storage else "journal file (default)",
        elapsed_s=elapsed,
        folds=len(prep.folds),
    )


def result_json(result: SearchResult, selection: Any = None) -> str:
    out = result.as_dict()
    if selection is not None:
        out["selection"] = dataclasses.asdict(selection)
    return json.dumps(out, indent=2, default=str)
