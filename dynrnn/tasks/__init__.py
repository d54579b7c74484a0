"""Benchmark tasks shared by `dr.compare` (MQAR, sequential digits, reconstruction)."""

from ._tasks import (
    IGNORE as IGNORE,
    MQAR as MQAR,
    TASKS as TASKS,
    AbstractTask as AbstractTask,
    Lorenz63Reconstruction as Lorenz63Reconstruction,
    SequentialDigits as SequentialDigits,
    TaskData as TaskData,
    make_task as make_task,
    mqar as mqar,
)
