"""The schema of a run configuration: every table's keys, their types and the checks of the
values, with the same checks the Python calls make (`check_positive` and friends).

An unknown table or key is refused with the nearest valid name ("did you mean ..."), a value of
the wrong type or range with the key, the value and what was expected. The `[model]` table
belongs to the chosen family and is checked by `dr.models.build` against the family's
constructor.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable

from .._errors import DynrnnValueError


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of a table: its type(s), a check of the value, and what it means."""

    types: tuple[type, ...]
    check: Callable | None = None
    expected: str = ""


def _positive(v):
    return v > 0 and math.isfinite(v)


def _non_negative(v):
    return v >= 0 and math.isfinite(v)


def _fraction(v):
    return 0.0 <= v < 1.0


def _held_out(v):
    if isinstance(v, str):
        return v == "auto"
    if isinstance(v, list):
        return (len(v) > 0 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                   for i in v) and len(set(v)) == len(v))
    return v == 0 or v >= 2


INT = (int,)
NUMBER = (int, float)
TEXT = (str,)
FLAG = (bool,)

SCHEMA: dict[str, dict[str, Key]] = {
    "data": {
        "train": Key(TEXT, expected="a path or dataset:NAME"),
        "test": Key(TEXT, expected="a path or dataset:NAME"),
        "rate": Key(NUMBER, _positive, "a sampling rate in Hz > 0"),
        "layout": Key(TEXT, lambda v: v in ("time-major", "neuron-major"),
                      "'time-major' or 'neuron-major'"),
        "allow_pickle": Key(FLAG, expected="true or false"),
    },
    "preprocess": {
        "variable": Key(TEXT, expected="the recording variable to fit (default 'activity')"),
        "cells_only": Key(FLAG, expected="true or false"),
        "neuropil": Key(NUMBER, lambda v: 0.0 <= v <= 1.0,
                        "a neuropil coefficient in [0, 1] (0: no correction)"),
        "dff": Key(FLAG, expected="true or false"),
        "dff_window_s": Key(NUMBER, _positive, "a window in seconds > 0"),
        "dff_percentile": Key(NUMBER, lambda v: 0.0 < v < 100.0, "a percentile in (0, 100)"),
        "zscore": Key(FLAG + TEXT, lambda v: v in (True, False, "auto"),
                      "true, false or 'auto'"),
        "pca": Key(INT, _non_negative, "a number of components >= 0 (0: no PCA)"),
        "split": Key(NUMBER, lambda v: 0.0 < v < 1.0,
                     "the training share of the series in (0, 1)"),
        "subsample": Key(INT, _positive, "an integer >= 1 (keep every n-th frame)"),
        "denoise": Key(FLAG, expected="true or false (filter white observation noise out of "
                       "the training part)"),
    },
    "teacher_forcing": {
        "type": Key(TEXT, lambda v: v in ("GTF", "STF"), "'GTF' or 'STF'"),
        "alpha": Key(NUMBER + TEXT, lambda v: v == "adaptive" if isinstance(v, str)
                     else 0.0 <= v <= 1.0, "a number in [0, 1] or 'adaptive'"),
        "method": Key(TEXT, expected="an α estimation method of dr.GTF"),
        "update_every": Key(INT, _positive, "an integer >= 1"),
        "gamma": Key(NUMBER, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
        "partial": Key(FLAG, expected="true or false"),
        "interval": Key(INT, _positive, "an integer >= 1"),
    },
    "training": {
        "n_steps": Key(INT, _positive, "an integer >= 1"),
        "batch_size": Key(INT, _positive, "an integer >= 1"),
        "seq_len": Key(INT, _positive, "an integer >= 1"),
        "learning_rate": Key(NUMBER, _positive, "a finite number > 0"),
        "final_learning_rate": Key(NUMBER, _positive, "a finite number > 0"),
        "noise": Key(NUMBER, _non_negative, "a finite number >= 0"),
        "seed": Key(INT, _non_negative, "an integer >= 0"),
        "eval_every": Key(INT, _positive, "an integer >= 1"),
        "steps_per_call": Key(INT, _positive, "an integer >= 1"),
        "validation_fraction": Key(NUMBER, _fraction, "a number in [0, 1)"),
        "members": Key(INT, _positive, "an integer >= 1 (runs of which the best is kept)"),
        "workers": Key(INT + TEXT, lambda v: v == "auto" if isinstance(v, str) else v >= 1,
                       "'auto' or an integer >= 1 (processes that train members at once)"),
    },
    "evaluation": {
        "lyapunov_steps": Key(INT, _positive, "an integer >= 1"),
        "prediction_steps": Key(INT, _positive, "an integer >= 1"),
        "held_out_neurons": Key(
            INT + TEXT + (list,), _held_out,
            "'auto', an integer K >= 0 (every K-th neuron held out; 0: none; not 1) or a "
            "list of distinct neuron positions >= 0"),
        "horizon": Key(INT, _positive, "a largest forecast horizon >= 1 (frames)"),
        "ar_order": Key(INT, _positive, "an AR baseline order >= 1"),
        "n_boot": Key(INT, _positive, "a number of bootstrap resamples >= 1"),
        "block": Key(INT, _positive, "a bootstrap block length >= 1"),
    },
    "output": {
        "dir": Key(TEXT, expected="a folder"),
        "figures": Key(FLAG, expected="true or false"),
    },
}
TOP_LEVEL = {"name": Key(TEXT, expected="a name for the run")}


def did_you_mean(name: str, valid) -> str:
    """`"; did you mean 'x'?"` for the nearest valid name, or `""`."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def check_value(where: str, key: str, value, spec: Key):
    """The value if it has the key's type and passes its check, else a `ValueError`."""
    ok_type = isinstance(value, spec.types) and not (
        isinstance(value, bool) and bool not in spec.types)
    if not ok_type:
        raise DynrnnValueError(
            f"{where} {key} = {value!r}: expected {spec.expected or _type_name(spec.types)}, "
            f"got {type(value).__name__}."
        )
    if spec.check is not None and not spec.check(value):
        raise DynrnnValueError(f"{where} {key} = {value!r}: expected {spec.expected}.")
    return value


def validate(cfg: dict, source: str) -> dict:
    """Check every table and key of a configuration (see the module docstring).

    **Raises:** `ValueError` naming `source`, the table, the key and what was expected.
    """
    tables = set(SCHEMA) | {"model"}
    for name, value in cfg.items():
        if isinstance(value, dict):
            if name not in tables:
                raise DynrnnValueError(
                    f"config {source} has an unknown table [{name}]"
                    f"{did_you_mean(name, tables)} (tables: {', '.join(sorted(tables))})."
                )
            continue
        if name not in TOP_LEVEL:
            raise DynrnnValueError(
                f"config {source} has an unknown top-level key {name!r}"
                f"{did_you_mean(name, TOP_LEVEL)} (or a table misses its [header])."
            )
        check_value(f"config {source}:", name, value, TOP_LEVEL[name])
    for table, keys in SCHEMA.items():
        for key, value in cfg.get(table, {}).items():
            where = f"config {source} [{table}]"
            if key not in keys:
                raise DynrnnValueError(
                    f"{where} has no key {key!r}{did_you_mean(key, keys)} "
                    f"(keys: {', '.join(keys)})."
                )
            if value is not None:
                check_value(where, key, value, keys[key])
    return cfg
