"""Hooks of `dr.fit` that need the rest of the package: held-out evaluation and checkpoints."""

from __future__ import annotations

import math
import pathlib
import sys
import time

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._errors import CheckpointError, check_array, check_positive
from . import _checkpoint, _distributed
from ._data import as_series_list
from ._loop import AbstractHook, Run


class Evaluation(AbstractHook):
    """Held-out measures during training: every `every` updates (rounded to whole host calls)
    and at the end, the model generates from the first point of `data` and is scored with
    `D_stsp` and `D_H` as `dr.evaluate` does (on at most `max_points` points). The values go
    into the chunk's logs (the progress bar, callbacks) and the history (`eval_step`); the
    best model of the run is then the one with the lowest held-out `D_stsp`.

    **Arguments:**
    - `data`: a held-out series `(time, obs)` (or a recording).
    - `every`: updates between evaluations (default: every 10 host calls).
    - `max_points`: length of the compared series.
    """

    def __init__(self, data, *, every: int | None = None, max_points: int = 10_000):
        self.x = np.asarray(as_series_list(data, "eval_data")[0])
        if every is not None:
            check_positive(every, "every", integer=True)
        check_positive(max_points, "max_points", integer=True)
        self.every = every
        self.max_points = max_points
        self._next = None

    def start(self, run: Run):
        check_array(self.x, "eval_data", dims=run.model.n_obs)
        steps_per_call = run.config.get("steps_per_call", 50)
        every = self.every if self.every is not None else 10 * steps_per_call
        self.every = max(steps_per_call, (every // steps_per_call) * steps_per_call)
        for name in ("eval_step", "D_stsp", "D_H"):
            run.evaluations.setdefault(name, [])

    def after_chunk(self, run: Run) -> bool:
        if run.step % self.every and run.step != run.n_steps:
            return False
        from ._evaluate import evaluate

        measures = evaluate(run.model, self.x[: self.max_points], prediction_steps=None,
                            lyapunov=False)
        for name in ("D_stsp", "D_H"):
            run.logs[name] = float(measures[name])
            run.evaluations[name].append(float(measures[name]))
        run.evaluations["eval_step"].append(run.step)
        return False


class Checkpointing(AbstractHook):
    """Writes `last.eqx` (model, optimiser and objective state, history) after every host call
    and `best.eqx` when the run's best model improves; on start, resumes from `last.eqx` if
    the folder holds one, after checking that it was written by a run with the same data and
    settings (`run.config`, recorded in the file), and says so on stderr.

    `dr.fit(checkpoint_dir=PATH)` uses `Checkpointing(PATH)`; pass
    `checkpoint_dir=dr.training.Checkpointing(PATH, overwrite=True)` to start afresh in a folder
    that holds another run (its checkpoints are replaced). `every` (seconds, default 0): write
    `last.eqx` at most this often (and after the last update); each write is synced to disk,
    which costs tens of milliseconds, a lot against host calls of a second.

    **Raises (on start, before the first update):** `CheckpointError` if the folder cannot be
    created or written, if it holds a run with other data or settings (naming the first
    difference), or if its `last.eqx` is unreadable.

    In a fit over several processes only process 0 touches the folder: it writes the files,
    and on start it reads them and every process resumes from the same bytes.
    """

    def __init__(self, directory, *, overwrite: bool = False, every: float = 0.0):
        self.dir = pathlib.Path(directory)
        self.overwrite = bool(overwrite)
        self.every = float(every)
        self._written = -math.inf

    def _check_writable(self):
        if self.dir.exists() and not self.dir.is_dir():
            raise CheckpointError(
                f"`checkpoint_dir` {str(self.dir)!r} is not a folder (a file of that name "
                "exists); pass a folder."
            )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".dynrnn-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise CheckpointError(
                f"`checkpoint_dir` {str(self.dir)!r} cannot be created or written: "
                f"{e.strerror or e}; pass a folder you can write into."
            ) from e

    def _extra(self, run: Run):
        return {"state": run.state,
                "history": {k: jnp.asarray(v) for k, v in run.history.items()}}

    def _read(self) -> bytes | None:
        """`last.eqx` and `best.eqx` (empty if absent) packed, or None to start afresh."""
        self._check_writable()
        last = self.dir / "last.eqx"
        if not last.exists():
            return None
        if self.overwrite:
            for name in ("last.eqx", "best.eqx"):
                (self.dir / name).unlink(missing_ok=True)
            print(f"dynrnn: starting afresh in {self.dir} (overwrite=True)", file=sys.stderr)
            return None
        best = self.dir / "best.eqx"
        return _distributed.pack([last.read_bytes(),
                                  best.read_bytes() if best.exists() else b""])

    def start(self, run: Run):
        self._written = -math.inf  # the first host call of every run is written
        blob = run.processes.on_writer(self._read)
        if blob is None:
            return
        last_bytes, best_bytes = _distributed.unpack(blob)
        last = self.dir / "last.eqx"
        try:
            header, payload = _checkpoint.read_header(last, last_bytes)
            meta = header["metadata"]
        except CheckpointError as e:
            raise CheckpointError(
                f"cannot resume from `checkpoint_dir` {str(self.dir)!r}: {e}. Delete the folder "
                "or pick another to start afresh."
            ) from e
        difference = first_difference(meta.get("config", {}), run.config)
        if difference is not None:
            where, there, now = difference
            what = ("data (another series or another window length)" if where == "data"
                    else f"{where} ({_short(there)} there, {_short(now)} now)")
            raise CheckpointError(
                f"`checkpoint_dir` {str(self.dir)!r} holds a run with different {what}; "
                "resume only with the same data and settings, use another folder, or start "
                "afresh with checkpoint_dir=dr.training.Checkpointing(dir, overwrite=True) "
                "(--overwrite on the command line)."
            )
        try:
            model, meta, extra = _checkpoint.load_parts(
                last, header, payload, like=run.model, extra_like=self._extra(run),
                return_metadata=True)
        except CheckpointError as e:
            raise CheckpointError(
                f"cannot resume from `checkpoint_dir` {str(self.dir)!r}: {e}. Delete the folder "
                "or pick another to start afresh."
            ) from e
        run.params = eqx.filter(model, eqx.is_inexact_array)
        run.state = extra["state"]
        run.history = {k: np.array(v) for k, v in extra["history"].items()}
        run.step = int(meta["step"])
        run.evaluations = {k: list(v) for k, v in meta.get("evaluations", {}).items()}
        best = meta.get("best_score")
        run.best_score = np.inf if best is None else best
        if best_bytes:
            best_path = self.dir / "best.eqx"
            best_model = _checkpoint.load_parts(
                best_path, *_checkpoint.read_header(best_path, best_bytes), like=run.model)
            run.best_params = eqx.filter(best_model, eqx.is_inexact_array)
        if run.processes.writer:
            print(f"dynrnn: resuming {run.name} from {last} at update {run.step} of "
                  f"{run.n_steps}", file=sys.stderr)

    def after_chunk(self, run: Run) -> bool:
        if not run.processes.writer:
            return False
        if run.improved:
            _checkpoint.save(self.dir / "best.eqx", run.model, step=run.step,
                             score=float(run.best_score), config=run.config)
        now = time.monotonic()
        if now - self._written < self.every and run.step < run.n_steps:
            return False
        self._written = now
        best = float(run.best_score) if np.isfinite(run.best_score) else None
        _checkpoint.save(self.dir / "last.eqx", run.model, extra=self._extra(run),
                         step=run.step, best_score=best, evaluations=run.evaluations,
                         config=run.config)
        return False


def first_difference(a, b, prefix: str = ""):
    """`(path, a value, b value)` of the first leaf where two JSON trees differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
