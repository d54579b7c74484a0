"""Flowing digits: scikit-learn's 8×8 handwritten digits moving with constant integer velocities
on a periodic grid (a small, CPU-sized Moving MNIST).

Moving MNIST as used by Keller, "Flow Equivariant Recurrent Neural Networks", arXiv:2507.14793
(2025), Sec. 5.1: digits placed at random positions and translated by a constant integer velocity
per step with wrap-around. Here the digits come from `sklearn.datasets.load_digits` (1797 images,
8×8, grey levels 0–16), so nothing is downloaded.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._errors import DynrnnTypeError, DynrnnValueError, check_positive


_N_TRAIN_DIGITS = 1437  # sklearn digits 0..1436 form the "train" split, the last 360 "test"


class FlowingDigits(NamedTuple):
    """Output of `flowing_digits` (unpacks as `frames, labels, velocities`).

    - `frames`: `(n, n_frames, 1, *grid)`, values in `[0, 1]`.
    - `labels`: `(n,)` digit classes for `n_digits=1`, else `(n, n_digits)`.
    - `velocities`: `(n, d)` for `n_digits=1`, else `(n, n_digits, d)`; frame `t` holds each
      digit shifted by `t·v` from frame 0.
    """

    frames: Float[Array, "n time 1 *grid"]
    labels: Int[Array, " n *digits"]
    velocities: Int[Array, "n *digits d"]


def _load_digit_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "dynrnn.datasets.flowing_digits needs scikit-learn for its digit images; install it "
            "with `pip install dynrnn[digits]` (or `pip install scikit-learn`)."
        ) from e
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int32)
    if split == "train":
        return images[:_N_TRAIN_DIGITS], labels[:_N_TRAIN_DIGITS]
    if split == "test":
        return images[_N_TRAIN_DIGITS:], labels[_N_TRAIN_DIGITS:]
    return images, labels


def _velocity_choices(velocities, d: int) -> np.ndarray:
    if isinstance(velocities, int | np.integer) and not isinstance(velocities, bool):
        if velocities < 0:
            raise DynrnnValueError(f"`velocities` must be an integer r >= 0, got {velocities}.")
        r = int(velocities)
        return np.array(list(itertools.product(range(-r, r + 1), repeat=d)), dtype=np.int32)
    try:
        arr = np.asarray(velocities)
    except Exception as e:  # pragma: no cover - defensive
        raise DynrnnTypeError(
            f"`velocities` must be an int or integer vectors, got {velocities!r}."
        ) from e
    if d == 1 and arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] == 0:
        raise DynrnnValueError(
            f"`velocities` must be an integer r or a non-empty list of {d}-component integer "
            f"vectors for a {d}-D grid, got shape {arr.shape}."
        )
    if arr.dtype.kind not in "iu" and not np.all(arr == np.round(arr)):
        raise DynrnnValueError(f"`velocities` must be integers, got {velocities!r}.")
    return arr.astype(np.int32)


def flowing_digits(
    n: int,
    *,
    n_frames: int,
    grid: int | Sequence[int],
    velocities: int | Sequence,
    n_digits: int = 1,
    split: str = "all",
    key: PRNGKeyArray,
) -> FlowingDigits:
    """Sequences of digits moving with constant integer velocities on a periodic grid.

    Each digit `k` of a sequence is placed at a uniformly random position `p_k` and moves with a
    velocity `v_k` drawn uniformly from the allowed set; frame `t` is

        f_t = min(1, Σ_k roll(D_k, p_k + t·v_k)),

    where `D_k` is the digit on an empty canvas (2-D: the 8×8 image; 1-D: the image summed over
    its rows, an 8-long column profile scaled to a peak of 1). With one digit (or equal
    velocities) `f_t = roll(f_0, t·v)` exactly.

    **Arguments:**
    - `n`: number of sequences.
    - `n_frames`: frames per sequence.
    - `grid`: `(H, W)` for 2-D frames, an int `L` for 1-D frames; every axis at least 8.
    - `velocities`: an int `r` (velocities drawn from `{−r..r}^d`) or a list of integer velocity
      vectors to draw from (for example, a training subset for velocity generalisation).
    - `n_digits`: digits per sequence (1 or more, the paper's Moving MNIST uses 2).
    - `split`: `"all"`, `"train"` (scikit-learn digits 0–1436) or `"test"` (the last 360), so
      that train and test sequences can use disjoint digit images.
    - `key`: PRNG key.

    **Returns:** a `FlowingDigits` named tuple `(frames, labels, velocities)`; `frames` is
    float32 `(n, n_frames, 1, *grid)`.

    **Raises:** `ImportError` without scikit-learn (the `digits` extra); `DynrnnValueError` for a
    grid smaller than a digit, a bad velocity set or non-positive counts.
    """
    check_positive(n, "n", integer=True)
    check_positive(n_frames, "n_frames", integer=True)
    check_positive(n_digits, "n_digits", integer=True)
    if split not in ("all", "train", "test"):
        raise DynrnnValueError(f"`split` must be 'all', 'train' or 'test', got {split!r}.")
    grid = (int(grid),) if isinstance(grid, int | np.integer) else tuple(int(g) for g in grid)
    if len(grid) not in (1, 2):
        raise DynrnnValueError(f"`grid` must be an int (1-D) or (H, W) (2-D), got {grid}.")
    if any(g < 8 for g in grid):
        raise DynrnnValueError(f"every axis of `grid` must be >= 8 (the digit size), got {grid}.")
    d = len(grid)
    choices = jnp.asarray(_velocity_choices(velocities, d))
    images, classes = _load_digit_images(split)
    if d == 1:
        profile = images.sum(axis=1)
        images = profile / profile.max(axis=1, keepdims=True)
    templates = np.zeros((images.shape[0],) + grid, np.float32)
    templates[(slice(None),) + tuple(slice(0, 8) for _ in grid)] = images
    templates = jnp.asarray(templates)

    k_img, k_pos, k_vel = jr.split(key, 3)
    idx = jr.randint(k_img, (n, n_digits), 0, images.shape[0])
    pos = jnp.stack([jr.randint(k, (n, n_digits), 0, g) for k, g in
                     zip(jr.split(k_pos, d), grid, strict=True)], axis=-1)
    vel = choices[jr.randint(k_vel, (n, n_digits), 0, choices.shape[0])]
    axes = tuple(range(d))

    def frame(img, p, v, t):
        return jnp.roll(img, tuple(p[i] + t * v[i] for i in range(d)), axis=axes)

    frames_fn = jax.vmap(  # over sequences
        jax.vmap(  # over time
            jax.vmap(frame, in_axes=(0, 0, 0, None)),  # over digits
            in_axes=(None, None, None, 0),
        ),
        in_axes=(0, 0, 0, None),
    )
    per_digit = frames_fn(templates[idx], pos, vel, jnp.arange(n_frames))
    frames = jnp.minimum(per_digit.sum(axis=2), 1.0)[:, :, None]
    labels = jnp.asarray(classes)[idx]
    if n_digits == 1:
        return FlowingDigits(frames, labels[:, 0], vel[:, 0])
    return FlowingDigits(frames, labels, vel)
