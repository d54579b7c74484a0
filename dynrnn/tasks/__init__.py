"""Benchmark tasks shared by `dr.compare`: reconstruction of dynamical systems (datasets,
simulated systems, the dysts catalogue, a user's files) and sequence tasks (MQAR, sequential
digits)."""

from ._reconstruction import (
    MEASURES as MEASURES,
    Lorenz63Reconstruction as Lorenz63Reconstruction,
    Reconstruction as Reconstruction,
    dominant_period as dominant_period,
    load_catalogue as load_catalogue,
)
from ._tasks import (
    IGNORE as IGNORE,
    MQAR as MQAR,
    TASKS as TASKS,
    AbstractTask as AbstractTask,
    SequentialDigits as SequentialDigits,
    TaskData as TaskData,
    make_task as make_task,
    mqar as mqar,
)
