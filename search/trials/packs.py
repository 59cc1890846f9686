"""Several trials at once: ask a pack of trials, train all their folds in one engine call, tell.

The sampler proposes the trials of a pack together (TPE with a constant liar keeps them
apart); the pruner still decides per trial (per epoch in holdout, per fold in k-fold), and
each trial keeps its own Optuna trial and MLflow runs.
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import Trial
from search.engines.base import Member, Trained, collect_garbage, freeze_libraries
from search.engines.pack.device import accelerator_memory
from search.errors import SearchFailed
from search.names import ONE_FOLD
from search.space.sampling import upper
from search.space.schema import Space
from search.study import Budget, failure_reasons
from search.trials.context import SearchContext
from search.trials.objective import TrialRun


def pack_size(space: Space, features: int = 0) -> int:
    """Trials per pack: the space's, or `auto`. On a CPU, a third of the budget between 2
    and 8 (the sampler learns from earlier packs; a larger pack gains little where the
    cores are busy already); on an accelerator, up to 64 trials, as many as fit in half
    of its memory at the space's widest and deepest."""
    value = space.training.pack_size
    if value != "auto":
        return int(value)
    budget = space.study.trials
    memory = accelerator_memory()
    if memory is None:
        return 8 if budget is None else max(2, min(8, budget // 3))
    folds = max(1, space.validation.folds) if space.validation.scheme not in ONE_FOLD else 1
    fits = memory // 2 // max(1, folds * _member_bytes(space, features))
    cap = int(max(1, min(64, fits)))
    return cap if budget is None else max(1, min(cap, budget // 2))


def _member_bytes(space: Space, features: int) -> int:
    """A generous estimate of one member's device memory: weights, optimizer slots, best
    weights and gradients (5 copies), and one batch's activations through every layer."""
    width, depth = int(upper(space.params.width)), int(upper(space.params.depth))
    batch = int(upper(space.params.batch_size))
    weights = features * width + max(0, depth - 1) * width * width + width * 16
    return 4 * (5 * weights + 4 * batch * width * depth)


def optimize_packs(
    study: optuna.Study, ctx: SearchContext, budget: Budget, size: int
) -> list[FrozenTrial]:
    """Run the budget's trials pack by pack; a failing trial is recorded and the study goes
    on, as `search.study.optimize` does for one trial at a time."""
    freeze_libraries()
    started, new = time.monotonic(), list[FrozenTrial]()
    while budget.trials is None or len(new) < budget.trials:
        if budget.timeout is not None and time.monotonic() - started > budget.timeout:
            break
        k = size if budget.trials is None else min(size, budget.trials - len(new))
        room = budget.room(study)  # another process may run the same study
        k = k if room is None else min(k, room)
        if k == 0:
            break
        told, stop = run_pack(study, ctx, budget, [study.ask() for _ in range(k)])
        new += told
        if stop:
            break
    if new and all(t.state == TrialState.FAIL for t in new):
        raise SearchFailed(f"all {len(new)} trials failed: {'; '.join(failure_reasons(new))}")
    return new


def run_pack(
    study: optuna.Study, ctx: SearchContext, budget: Budget, trials: list[optuna.Trial]
) -> tuple[list[FrozenTrial], bool]:
    """Train and tell one pack; True with the trials when the sampler stopped the study."""
    collect_garbage()
    runs: dict[int, TrialRun] = {}
    ended: dict[int, BaseException] = {}
    try:
        for trial in trials:
            try:
                runs[trial.number] = TrialRun(ctx, trial)
            except Exception as exc:  # a hypermodel that cannot be built, say
                trial.set_user_attr(Trial.FAIL_REASON, f"{type(exc).__name__}: {exc}")
                ended[trial.number] = exc
        members = [m for run in runs.values() for m in run.members()]
        if ctx.on_pack is not None:
            ctx.on_pack(sorted(runs))
        for trained in ctx.trial_engine().train(members, ctx.data, _hook(runs, ended)):
            _fold_done(runs, ended, trained)
    except BaseException as exc:  # Ctrl-C: every trial of the pack ends, none left RUNNING
        for trial in trials:
            if trial.number in runs and trial.number not in ended:
                runs[trial.number].stopped(exc)
                runs[trial.number].name_run()
            _tell_state(study, trial, TrialState.FAIL)
        raise
    told = [_tell(study, budget, trial, runs.get(trial.number), ended) for trial in trials]
    return [t for t, _ in told], any(stop for _, stop in told)


def _hook(runs: dict[int, TrialRun], ended: dict[int, BaseException]):  # type: ignore[no-untyped-def]
    def on_epoch(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        if member.trial in ended:
            return True
        return runs[member.trial].on_epoch(member, epoch, logs)

    return on_epoch


def _fold_done(runs: dict[int, TrialRun], ended: dict[int, BaseException], t: Trained) -> None:
    n = t.member.trial
    if n in ended:
        return
    try:
        runs[n].fold_done(t)
    except (optuna.TrialPruned, Exception) as exc:
        ended[n] = exc


def _tell(
    study: optuna.Study,
    budget: Budget,
    trial: optuna.Trial,
    run: TrialRun | None,
    ended: dict[int, BaseException],
) -> tuple[FrozenTrial, bool]:
    exc = ended.get(trial.number)
    value = None
    if run is not None and exc is None:
        try:
            value = run.complete()
        except Exception as error:
            exc = error
    if run is not None:
        if exc is not None:
            run.stopped(exc)
        run.name_run()
    if exc is None:
        frozen, stop = _tell_state(study, trial, TrialState.COMPLETE, value)
    elif isinstance(exc, optuna.TrialPruned):
        frozen, stop = _tell_state(study, trial, TrialState.PRUNED)
    else:
        optuna.logging.get_logger("optuna").warning(
            f"Trial {trial.number} failed: {type(exc).__name__}: {exc}"
        )
        frozen, stop = _tell_state(study, trial, TrialState.FAIL)
    for callback in budget.callbacks:
        callback(study, frozen)
    return frozen, stop


def _tell_state(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None = None
) -> tuple[FrozenTrial, bool]:
    """`study.tell`; True when the sampler asked the study to stop (a grid that is done:
    Optuna's `study.stop` only works inside `optimize`, and raises here after the trial's
    state is stored)."""
    try:
        return study.tell(trial, value, state=state), False
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        return study.get_trials(deepcopy=False)[trial.number], True
