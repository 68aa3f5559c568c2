"""The one training loop every method uses.

The dataset lives on the device as one tensor; a *step* takes the batch
``perm_e[b*B:(b+1)*B]`` where ``e = step // steps_per_epoch``, ``b = step % steps_per_epoch`` and
``perm_e`` is a permutation drawn from a generator seeded with ``(seed, e)`` (or the identity when
``shuffle`` is off, as DCEC's code does). The batch order therefore depends only on the step, so
a run resumed from a checkpoint sees exactly the batches an uninterrupted run would.

No host synchronisation happens in the inner loop: loss terms are summed on the device and read
back every ``log_every`` steps, where they are checked for NaN/Inf, written to the history, and
(every ``checkpoint_every`` steps) checkpointed. A checkpoint is only written after a clean
check, so the last checkpoint is always a good one.

A method plugs in with ``loss_fn(batch_indices) -> {"loss": total, term: value, ...}`` and,
optionally, a :class:`PeriodicHook` called before every ``period``-th step (DEC's target update,
DEPICT's per-epoch refresh) whose ``__call__`` may stop training. Inside a
:func:`recording` block the loop also hands a :class:`StepRecorder` (the stage's embedding
snapshots, :class:`stages.runtime.snapshots.SnapshotRecorder`) the steps at which it records
(before the first step, after epochs 1, 2, 4, ... and the last), and keeps its state in the
checkpoints.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from stages.plumbing.artifacts import atomic_path, remove_partial_writes
from stages.plumbing.errors import ConfigError, DataFileError, NonFiniteLossError
from stages.runtime.precision import check_precision, use_precision
from stages.runtime.torchfiles import UnsafeFileError, load_torch

log = logging.getLogger("stages.runtime.train")

LossFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


class PeriodicHook(Protocol):
    """Called before step ``s`` whenever ``s % period == 0``; returns True to stop training.

    It may append rows to the history it returns from :meth:`rows` and must round-trip its
    state through ``state_dict``/``load_state_dict`` (tensors allowed) for resuming.
    """

    period: int

    def __call__(self, step: int) -> bool: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StepRecorder(Protocol):
    """What the loop reports its steps to inside a :func:`recording` block (the embedding
    snapshots of :mod:`stages.runtime.snapshots`). ``phase`` is the loop's ``desc``; the state
    travels in the loop's checkpoints, so a resumed loop keeps what was recorded before."""

    def maybe_take(self, phase: str, step: int, steps_per_epoch: int) -> None:
        """Called before every step: record now if due."""

    def take(self, phase: str, step: int, steps_per_epoch: int) -> None:
        """Called after the last step: record now."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


_RECORDER: contextvars.ContextVar[StepRecorder | None] = contextvars.ContextVar(
    "stages.runtime.train.recorder", default=None)


def active_recorder() -> StepRecorder | None:
    """The recorder of the current :func:`recording` block, or None."""
    return _RECORDER.get()


@contextlib.contextmanager
def recording(recorder: StepRecorder | None) -> Iterator[StepRecorder | None]:
    """Make ``recorder`` the one every :func:`run_loop` inside the block reports to (each loop
    of a stage: every phase of a multi-phase pretraining, DEPICT's warm start and joint phase)."""
    token = _RECORDER.set(recorder)
    try:
        yield recorder
    finally:
        _RECORDER.reset(token)


@dataclass
class LoopConfig:
    """How long and how to iterate.

    Attributes:
        batch_size: samples per step (the last batch of an epoch may be smaller).
        max_steps: hard cap on optimisation steps.
        shuffle: new permutation every epoch (True) or sequential batches (False).
        seed: seeds the per-epoch permutations.
        log_every: steps between host syncs (finiteness check, history row, progress).
        checkpoint_every: steps between checkpoints (rounded up to a multiple of log_every).
        precision: ``32``, ``bf16-mixed`` or ``auto`` (:mod:`stages.runtime.precision`),
            applied to the model's layers when the loop starts.
        compile: run ``loss_fn`` (its forward and, through AOTAutograd, its backward) as
            ``torch.compile`` graphs (:func:`compiled_loss`); off by default (bench/README).
    """

    batch_size: int
    max_steps: int
    shuffle: bool = True
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000
    precision: str = "32"
    compile: bool = False


def loop_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    """The :class:`LoopConfig` fields a stage recipe carries besides its schedule: the
    checkpoint cadence the stage command sets, the recipe's ``precision`` and ``compile``."""
    return {"checkpoint_every": int(recipe.get("checkpoint_every", 1000)),
            "precision": check_precision(recipe.get("precision", "32")),
            "compile": bool(recipe.get("compile", False))}


def compiled_loss(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` through ``torch.compile`` with static shapes (an epoch's smaller last batch
    is a second graph). Parameters stay those of the eager modules, so optimisers, hooks,
    checkpoints and ``state_dict`` keys are unchanged. What dynamo cannot trace, and any graph
    the compiler fails on (torch 2.13's inductor fails on DSCDAN's fine-tuning loss), runs
    eagerly, with the compiler's warning in the log: compiling is a speed option and must not
    end a stage."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    return torch.compile(loss_fn, dynamic=False)


@dataclass
class LoopResult:
    steps: int
    stopped_by_hook: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None


class StageClock:
    """Wall seconds of a stage over every process that ran it: the time of this process plus
    what the checkpoints it resumed from had recorded (the work lost between a job's last
    checkpoint and its kill is not counted)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.prior = 0.0

    def elapsed(self) -> float:
        return self.prior + time.perf_counter() - self.start

    def resumed(self, saved_elapsed: float) -> None:
        """A checkpoint saved at ``saved_elapsed`` stage seconds was loaded."""
        self.prior = max(self.prior, saved_elapsed - (time.perf_counter() - self.start))


class Checkpointer:
    """Saves and restores the complete loop state in one file, atomically.

    Each save records the stage's wall seconds so far (:class:`StageClock`, shared by the
    checkpoints of a stage's phases); a load carries them into ``clock``. With a ``key`` (of
    everything that determines the job: recipe, inputs, code), each save records it, and a load
    of a checkpoint written under another key (or none) deletes that file, logs why, and
    returns None: the job starts afresh instead of resuming another job's state. A file that
    cannot be read as a checkpoint (one that would run code when unpickled included: it is read
    with ``weights_only``, :mod:`stages.runtime.torchfiles`) stops the stage with
    :meth:`unreadable`'s error; it is left as it is, and so are the checkpoints of the stage's other
    phases.
    """

    def __init__(self, path: str | os.PathLike | None, clock: StageClock | None = None,
                 key: str | None = None, phase_name: str | None = None,
                 root: Path | None = None):
        self.path = Path(path) if path else None
        self.clock = clock or StageClock()
        self.key = key
        self.phase_name = phase_name
        self.root = root or self.path  # the stage's checkpoint, whose phases sit beside it

    def save(self, state: dict[str, Any]) -> None:
        if self.path is None:
            return
        with atomic_path(self.path) as tmp:
            torch.save({**state, "stage_wall_s": self.clock.elapsed(), "job_key": self.key}, tmp)

    def load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = load_torch(self.path)  # weights_only: loading it cannot run code
        except UnsafeFileError as err:
            raise self.unreadable(str(err)) from err
        except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
            raise self.unreadable(f"{type(err).__name__}: {' '.join(str(err).split())}; the file "
                                  "is truncated or not a checkpoint") from err
        if self.key is not None and (not isinstance(saved, dict)
                                     or saved.get("job_key") != self.key):
            found = saved.get("job_key") if isinstance(saved, dict) else None
            log.warning("%s: written by another job (key %s, this job's is %s: its recipe, "
                        "inputs or code changed since); discarded, starting afresh",
                        self.path, found, self.key)
            self.path.unlink(missing_ok=True)
            return None
        if not isinstance(saved, dict):
            raise self.unreadable(f"it holds a {type(saved).__name__}, not a checkpoint's dict")
        if "stage_wall_s" in saved:
            self.clock.resumed(float(saved["stage_wall_s"]))
        return saved

    def unreadable(self, problem: str) -> DataFileError:
        """The error for a checkpoint file that cannot be resumed from: what is wrong with it,
        and that deleting it restarts only the training it holds (its phase), while the stage's
        other checkpoints, named, are kept and resumed."""
        others = sorted(p.name for p in _with_phases(self.root or Path("."))
                        if p != self.path and p.is_file())
        what = f"phase '{self.phase_name}'" if self.phase_name else "the training it holds"
        kept = f"; the other checkpoints ({', '.join(others)}) are kept and resumed" if others \
            else ""
        return DataFileError(
            f"{self.path}: checkpoint is unreadable ({problem}). It was left as it is: delete it "
            f"and rerun to restart {what} from its first step{kept}.")

    def phase(self, name: str) -> Checkpointer:
        """A sibling checkpoint (``checkpoint-<name>.pt``) for one phase of a multi-phase stage."""
        if self.path is None:
            return Checkpointer(None, self.clock, self.key)
        return Checkpointer(self.path.with_name(f"{self.path.stem}-{name}{self.path.suffix}"),
                            self.clock, self.key,
                            f"{self.phase_name}-{name}" if self.phase_name else name, self.root)

    def remove(self) -> None:
        """Delete this checkpoint and those of its phases, with the half-written copies that a
        job killed while saving one leaves behind."""
        if self.path is None:
            return
        for path in _with_phases(self.path):
            path.unlink(missing_ok=True)
            remove_partial_writes(path)


def _with_phases(path: Path) -> list[Path]:
    """A checkpoint path and its phases' sibling files (``<stem>-<phase><suffix>``)."""
    return [path, *path.parent.glob(f"{path.stem}-*{path.suffix}")]


def make_optimizer(params: list[torch.nn.Parameter], spec: dict) -> torch.optim.Optimizer:
    """SGD (lr, momentum, weight_decay) or Adam (lr, weight_decay) from a config entry.

    Adam is torch's fused kernel (one pass over each parameter instead of about ten): the same
    update, 4x faster on the CPU for the 3.3M parameters of the DEC family's SAE (10.0 -> 2.4 ms
    per step on one thread, measured 2026-12-02). SGD's plain and fused forms cost the same
    there, so it stays plain."""
    name = spec["name"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=spec["lr"], momentum=spec.get("momentum", 0.0),
                               weight_decay=spec.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(params, lr=spec["lr"], weight_decay=spec.get("weight_decay", 0.0),
                                fused=True)
    raise ConfigError(f"unknown optimizer '{name}'; valid choices: adam, sgd")


def chain_results(results: list[LoopResult]) -> LoopResult:
    """The phases of a multi-phase objective as one result: steps summed, histories in order,
    stopped by a hook if any phase was, resumed from the first phase that resumed."""
    resumed = next((r.resumed_from for r in results if r.resumed_from is not None), None)
    return LoopResult(sum(r.steps for r in results), any(r.stopped_by_hook for r in results),
                      [row for r in results for row in r.history], resumed)


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_samples / batch_size))


def phase_steps(recipe: dict[str, Any], name: str, spe: int,
                default_epochs: int | None = None) -> int:
    """Length in steps of the phase ``name`` of a recipe: ``<name>_steps`` when given (a paper
    that counts iterations, whatever the dataset size), else ``<name>_epochs`` x ``spe`` steps
    per epoch, else ``default_epochs`` x ``spe``. ``name`` '' reads ``steps`` / ``epochs``.
    A KeyError names the keys when there is neither and no default."""
    prefix = f"{name}_" if name else ""
    if f"{prefix}steps" in recipe:
        return int(recipe[f"{prefix}steps"])
    if f"{prefix}epochs" in recipe:
        return int(recipe[f"{prefix}epochs"]) * spe
    if default_epochs is None:
        raise KeyError(f"the recipe sets neither '{prefix}steps' nor '{prefix}epochs'")
    return default_epochs * spe


def batch_indices(step: int, n_samples: int, cfg: LoopConfig, device: torch.device) -> torch.Tensor:
    """Indices (B,) of the samples used at ``step`` (see module docstring)."""
    spe = steps_per_epoch(n_samples, cfg.batch_size)
    epoch, b = divmod(step, spe)
    start, stop = b * cfg.batch_size, min((b + 1) * cfg.batch_size, n_samples)
    if not cfg.shuffle:
        return torch.arange(start, stop, device=device)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    return torch.randperm(n_samples, generator=gen)[start:stop].to(device)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _progress(total: int, initial: int, desc: str):
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)


def run_loop(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, n_samples: int,
             cfg: LoopConfig, device: torch.device, *, hook: PeriodicHook | None = None,
             scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
             checkpoint: Checkpointer | None = None, desc: str = "train") -> LoopResult:
    """Optimise ``loss_fn`` for up to ``cfg.max_steps`` steps; see the module docstring.

    Returns the number of steps taken, whether the hook stopped training, and the history: one
    row per ``log_every`` steps with the mean of every loss term (``kind='train'``), plus the
    rows the hook adds. Raises :class:`NonFiniteLossError` naming the epoch, the term and the last
    good checkpoint when a loss term is NaN or Inf.
    """
    checkpoint = checkpoint or Checkpointer(None)
    recorder = active_recorder()  # embedding snapshots, when the stage asks (recording)
    use_precision(model, cfg.precision, device)
    step_loss = compiled_loss(loss_fn) if cfg.compile else loss_fn
    ckpt_every = max(cfg.log_every, math.ceil(cfg.checkpoint_every / cfg.log_every) * cfg.log_every)
    spe = steps_per_epoch(n_samples, cfg.batch_size)
    history: list[dict[str, Any]] = []
    step, resumed_from, last_good = 0, None, "none (no checkpoint written yet)"

    saved = checkpoint.load()
    if saved is not None:
        missing = [k for k in ("model", "optimizer", "rng", "step", "history") if k not in saved]
        if missing:
            raise checkpoint.unreadable(f"it lacks {', '.join(missing)}: not a training loop's "
                                        "checkpoint")
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise checkpoint.unreadable("its state does not fit this model or optimizer: "
                                        + " ".join(str(err).split())) from err
        if scheduler is not None and saved.get("scheduler") is not None:
            scheduler.load_state_dict(saved["scheduler"])
        if hook is not None and saved.get("hook") is not None:
            hook.load_state_dict(saved["hook"])
        if recorder is not None and saved.get("snapshots") is not None:
            recorder.load_state_dict(saved["snapshots"])
        _set_rng_state(saved["rng"])
        step = resumed_from = int(saved["step"])
        history = list(saved["history"])
        last_good = str(checkpoint.path)
        log.info("%s: resumed from %s at step %d", desc, checkpoint.path, step)
        if saved.get("finished"):
            return LoopResult(step, bool(saved.get("stopped_by_hook")), history, resumed_from)

    def snapshot(finished: bool = False, stopped: bool = False) -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "hook": hook.state_dict() if hook is not None else None, "rng": _rng_state(),
                "snapshots": recorder.state_dict() if recorder is not None else None,
                "step": step, "history": history, "finished": finished, "stopped_by_hook": stopped}

    sums: dict[str, torch.Tensor] = {}
    n_in_window = 0
    bar = _progress(cfg.max_steps, step, desc)
    stopped = False
    last_line = time.monotonic()
    model.train()
    try:
        while step < cfg.max_steps:
            if recorder is not None:
                recorder.maybe_take(desc, step, spe)
            if hook is not None and step % hook.period == 0 and hook(step):
                stopped = True
                break
            idx = batch_indices(step, n_samples, cfg, device)
            terms = step_loss(idx)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            for name, value in terms.items():
                value = value.detach().float()
                sums[name] = sums[name] + value if name in sums else value
            n_in_window += 1
            step += 1
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                row = _flush(sums, n_in_window, step, spe, last_good)
                history.append(row)
                sums, n_in_window = {}, 0
                if time.monotonic() - last_line >= PROGRESS_SECONDS or step == cfg.max_steps:
                    _log_progress(desc, row, cfg.max_steps)
                    last_line = time.monotonic()
                if bar is not None:
                    bar.update(step - bar.n)
                    bar.set_postfix(loss=f"{row['loss']:.4g}")
                if step % ckpt_every == 0 and checkpoint.path is not None:
                    checkpoint.save(snapshot())
                    last_good = str(checkpoint.path)
        if n_in_window:
            history.append(_flush(sums, n_in_window, step, spe, last_good))
        if recorder is not None:
            recorder.take(desc, step, spe)
        if checkpoint.path is not None:  # a restarted multi-phase stage skips finished phases
            checkpoint.save(snapshot(finished=True, stopped=stopped))
    finally:
        if bar is not None:
            bar.close()
    return LoopResult(step, stopped, history, resumed_from)


#: at most one progress line per this many seconds in a stage's log (and one at the end)
PROGRESS_SECONDS = 30.0


def _log_progress(desc: str, row: dict[str, Any], max_steps: int) -> None:
    """One log line: the step, the epoch and the mean of each loss term of the last window."""
    terms = ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                      if k not in ("kind", "step", "epoch") and isinstance(v, float))
    log.info("%s: step %d/%d (epoch %d): %s", desc, row["step"], max_steps, row["epoch"], terms)


def _flush(sums: dict[str, torch.Tensor], count: int, step: int, spe: int,
           last_good: str) -> dict[str, Any]:
    """Read the summed loss terms back (one host sync), check them, and make a history row."""
    names = list(sums)
    means = (torch.stack([sums[n] for n in names]) / count).tolist()
    row: dict[str, Any] = {"kind": "train", "step": step, "epoch": (step - 1) // spe}
    for name, value in zip(names, means, strict=True):
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss term '{name}' became {value} in epoch {row['epoch']} (steps "
                f"{step - count + 1}-{step}); last good checkpoint: {last_good}. Lower the "
                "learning rate or check the input data for extreme values.")
        row[name] = value
    return row


@torch.inference_mode()
def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                batch_size: int = 4096) -> torch.Tensor:
    """Apply ``fn`` to ``x`` (N, ...) in large batches without autograd; returns (N, ...)."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])



class EarlyStopping:
    """A :class:`PeriodicHook` that stops when a validation loss stops improving.

    Before every ``period``-th step (once per epoch when ``period`` is the number of steps per
    epoch) it evaluates ``val_loss()`` (a scalar tensor, computed without gradients), keeps a copy
    of the best weights, and stops after ``patience`` evaluations without improvement. Call
    :meth:`finish` after the loop: it evaluates the final weights too and restores the best ones.
    Labels are never involved.

    Args:
        model: the module being trained.
        val_loss: callable returning the validation loss of the current weights.
        period: steps between evaluations.
        patience: evaluations without a new best before stopping.
    """

    def __init__(self, model: nn.Module, val_loss: Callable[[], torch.Tensor], period: int,
                 patience: int):
        self.model, self.val_loss = model, val_loss
        self.period, self.patience = period, patience
        self.best = math.inf
        self.best_step = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad = 0
        self.rows: list[dict[str, Any]] = []

    def _evaluate(self, step: int) -> None:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            value = float(self.val_loss())
        self.model.train(was_training)
        self.rows.append({"kind": "validation", "step": step, "loss": value})
        if value < self.best:
            self.best, self.best_step, self.bad = value, step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad += 1

    def __call__(self, step: int) -> bool:
        self._evaluate(step)
        return self.bad >= self.patience

    def finish(self, step: int) -> None:
        """Evaluate the final weights (unless just done) and load the best weights seen."""
        if not self.rows or self.rows[-1]["step"] != step:
            self._evaluate(step)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "best_state": self.best_state,
                "bad": self.bad, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state["best"], state["best_step"]
        self.best_state, self.bad = state["best_state"], state["bad"]
        self.rows = list(state["rows"])


class RowMonitor:
    """The bookkeeping of a monitoring :class:`PeriodicHook` that only records rows: subclasses
    set ``self.rows = []`` and define ``__call__(step) -> False``, which appends one row with a
    ``step``; :meth:`finish` records the final weights unless the last row is of that step, and
    the rows are the checkpointed state."""

    rows: list[dict[str, Any]]

    def finish(self, step: int) -> None:
        if not self.rows or self.rows[-1]["step"] != step:
            self(step)

    def merge_into(self, result: LoopResult) -> LoopResult:
        """:meth:`finish` at ``result.steps``, then ``result`` with these rows merged into its
        history by step (the loop's own row first at an equal step)."""
        self.finish(result.steps)
        result.history = sorted(result.history + self.rows, key=lambda r: r["step"])
        return result

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])


class ValidationMonitor(RowMonitor):
    """A :class:`PeriodicHook` that records ``val_loss()`` (a scalar tensor, computed without
    gradients, in eval mode) every ``period`` steps as a ``kind='validation'`` row with column
    ``name``, and never stops training. A ``val_loss`` that returns a dict of scalars fills one
    column per key instead. Call :meth:`finish` after the loop to record the final weights
    too."""

    def __init__(self, model: nn.Module,
                 val_loss: Callable[[], torch.Tensor | dict[str, Any]], period: int,
                 name: str = "val_loss"):
        self.model, self.val_loss, self.period, self.name = model, val_loss, period, name
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int) -> bool:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            value = self.val_loss()
        self.model.train(was_training)
        values = value if isinstance(value, dict) else {self.name: value}
        self.rows.append({"kind": "validation", "step": step,
                          **{k: float(v) for k, v in values.items()}})
        return False


def validation_split(n_samples: int, fraction: float, seed: int,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train (N - V,), validation (V,)) index split, V = round(fraction * N) >= 1.

    Drawn without labels (the authors' code stratifies by label; that would leak them).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in (0, 1); got {fraction}")
    n_val = min(n_samples - 1, max(1, round(fraction * n_samples)))
    perm = torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed + 7919))
    return perm[n_val:].to(device), perm[:n_val].to(device)
