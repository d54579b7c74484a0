"""Flow-equivariant recurrent networks for translation flows on periodic grids.

Keller, "Flow Equivariant Recurrent Neural Networks", arXiv:2507.14793 (2025), Sec. 4 and
App. B; reference implementation akandykeller/FERNN (`moving_mnist_fp/moving_mnist_models.py`).

A flow is a time-parameterised transformation of the input, here a translation with constant
integer velocity `ν̂`: frame `t` (0-based) of the flowed sequence is `T_{tν̂} f_t`, the frame
rolled by `t·ν̂` on the periodic grid. An ordinary (convolutional) RNN is equivariant to static
translations but not to flows. The flow-equivariant RNN lifts its hidden state over a finite
set of velocities `V` and, at every step, translates each velocity's copy by its own velocity:

    h_t(ν) = σ(W ⋆ shift_ν(h_{t−1}(ν)) + U ⋆ f_t),    ν ∈ V,  h_{−1} = 0,

with `⋆` a circular cross-correlation without bias ("convolution" in the deep-learning sense),
`W` shared over `ν`, no mixing across `V`, and `U ⋆ f_t` broadcast to every `ν`. Because circular
convolution commutes with rolls, feeding the flowed sequence gives

    h_t[T f](ν) = T_{tν̂} h_t[f](ν − ν̂)    whenever ν − ν̂ ∈ V,

exactly (Keller 2025, Thm. 4.1): a moving input moves the hidden state with it and relabels the
velocity axis. Pooling over `V` (max, as in the paper) gives the layer's output.

Non-equivariant controls of the paper: `velocities=0` (the "G-RNN", a convolutional RNN that is
only equivariant to static translations), `learned_shifts=True` (the "G-RNN+": one learned
`(2r+1)^d` kernel per velocity, shared over channels, instead of the exact shift; reference
`kth/train_kth_classification.py`), and `FrameRNN`, a dense RNN on flattened frames.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..._errors import DynrnnTypeError, DynrnnValueError, check_positive, is_array


_ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}
_POOLS = ("max", "mean", "sum")


def velocity_set(velocities, spatial_dims: int) -> tuple[tuple[int, ...], ...]:
    """The velocity set `V` as a tuple of integer vectors of length `spatial_dims`.

    **Arguments:**
    - `velocities`: an integer `r >= 0`, meaning `{−r..r}^d` in lexicographic order, or a
      sequence of integer vectors (plain integers allowed when `spatial_dims == 1`).
    - `spatial_dims`: the grid's number of dimensions `d`.

    **Returns:** a tuple of `d`-tuples of Python ints, without duplicates.

    **Raises:** `DynrnnValueError`/`DynrnnTypeError` for negative `r`, vectors of the wrong length,
    non-integer components, duplicates or an empty set.
    """
    if isinstance(velocities, int | np.integer) and not isinstance(velocities, bool):
        r = int(velocities)
        if r < 0:
            raise DynrnnValueError(f"`velocities` must be an integer r >= 0, got {r}.")
        return tuple(itertools.product(range(-r, r + 1), repeat=spatial_dims))
    try:
        items = list(velocities)
    except TypeError as e:
        raise DynrnnTypeError(
            "`velocities` must be an integer r (for {-r..r}^d) or a sequence of integer "
            f"velocity vectors, got {type(velocities).__name__}."
        ) from e
    if not items:
        raise DynrnnValueError("`velocities` is empty; give at least one velocity vector.")
    out = []
    for v in items:
        vec = np.atleast_1d(np.asarray(v))
        if vec.ndim != 1 or vec.shape[0] != spatial_dims:
            raise DynrnnValueError(
                f"each velocity must be a vector of length spatial_dims={spatial_dims}, got {v!r}."
            )
        if vec.dtype.kind not in "iu" and not np.all(vec == np.round(vec)):
            raise DynrnnValueError(f"velocities must be integer vectors, got {v!r}.")
        out.append(tuple(int(c) for c in vec))
    if len(set(out)) != len(out):
        raise DynrnnValueError(f"`velocities` contains duplicates: {out}.")
    return tuple(out)


def circular_conv(
    x: Float[Array, "batch cin *grid"], kernel: Float[Array, "cout cin *k"], groups: int = 1
) -> Float[Array, "batch cout *grid"]:
    """Circular ("same", periodic) cross-correlation of `x` with an odd-sized `kernel`.

    `y[o, i] = Σ_c Σ_j kernel[o, c, j] x[c, (i + j − k//2) mod n]`, per spatial axis.
    """
    d = x.ndim - 2
    pads = [(0, 0), (0, 0)] + [(k // 2, k // 2) for k in kernel.shape[2:]]
    xp = jnp.pad(x, pads, mode="wrap")
    return jax.lax.conv_general_dilated(
        xp, kernel.astype(x.dtype), window_strides=(1,) * d, padding="VALID",
        feature_group_count=groups,
    )


def _uniform_conv_init(key, shape, dtype):
    # PyTorch's default Conv init (Kaiming-uniform with a=√5): U(±1/√fan_in).
    fan_in = math.prod(shape[1:])
    lim = 1.0 / math.sqrt(fan_in)
    return jr.uniform(key, shape, dtype=dtype, minval=-lim, maxval=lim)


def _check_frames(frames, name, *, channels, spatial_dims, min_grid, batch_ok=False):
    """Validate a `(time, channels, *grid)` array (a leading batch axis is rejected)."""
    if not is_array(frames):
        frames = jnp.asarray(frames)
    want = 2 + spatial_dims
    if frames.ndim != want:
        raise DynrnnValueError(
            f"`{name}` must have shape (time, channels, *grid) with {spatial_dims} grid "
            f"dimension(s), i.e. {want} dimensions, got shape {tuple(frames.shape)}"
            + (" (use jax.vmap for a batch of sequences)" if frames.ndim == want + 1 else "")
            + "."
        )
    if jnp.dtype(frames.dtype).kind not in "fiu":
        raise DynrnnTypeError(f"`{name}` must be real-valued, got dtype {frames.dtype}.")
    if frames.shape[1] != channels:
        raise DynrnnValueError(
            f"`{name}` must have {channels} channel(s) on axis 1, got shape {tuple(frames.shape)}."
        )
    grid = tuple(frames.shape[2:])
    if any(n < min_grid for n in grid):
        raise DynrnnValueError(
            f"the grid of `{name}` {grid} is smaller than the kernel: every grid axis must be "
            f">= {min_grid} for a circular convolution without wrapping the kernel onto itself."
        )
    if frames.shape[0] < 1:
        raise DynrnnValueError(f"`{name}` has no time steps (shape {tuple(frames.shape)}).")
    return frames


class AbstractFrameRNN(eqx.Module):
    """A recurrent network over a sequence of frames on a grid.

    Subclasses implement `initial_hidden(grid, dtype)`, `cell(h, frame) -> h` (one step) and
    `features(h) -> (hidden_channels, *grid)` (what decoders and classifier heads read);
    `__call__(frames)` runs the recurrence from `h_{−1} = initial_hidden` with `lax.scan` and
    returns the features at every step, `(time, hidden_channels, *grid)`.
    """

    in_channels: eqx.AbstractVar[int]
    hidden_channels: eqx.AbstractVar[int]
    spatial_dims: eqx.AbstractVar[int]

    @abc.abstractmethod
    def initial_hidden(self, grid: tuple[int, ...], dtype=None):
        """The hidden state before the first frame (zeros)."""

    @abc.abstractmethod
    def cell(self, h, frame: Float[Array, " channels *grid"]):
        """One step of the recurrence: the hidden state after reading `frame`."""

    @abc.abstractmethod
    def advance(self, h):
        """The hidden state carried one step forward without input: the term the recurrence
        applies to `h_t` before reading `f_{t+1}` (for the FERNN, `shift_ν(h_t(ν))`). Decoding
        it predicts frame `t+1` at the right place and time (see `NextFramePredictor`)."""

    @abc.abstractmethod
    def features(self, h) -> Float[Array, " hidden *grid"]:
        """Grid features of hidden state `h` (pooled over velocities where there are some)."""

    @abc.abstractmethod
    def check_frames(self, frames, name: str = "frames"):
        """Validate a `(time, channels, *grid)` input; return it."""

    def hidden_states(self, frames: Float[Array, "time channels *grid"]):
        """All hidden states `h_0 … h_{T−1}` (stacked on a leading time axis)."""
        frames = self.check_frames(frames)

        def body(h, f):
            h = self.cell(h, f)
            return h, h

        h0 = self.initial_hidden(tuple(frames.shape[2:]), frames.dtype)
        _, hs = jax.lax.scan(body, h0, frames)
        return hs

    @eqx.filter_jit
    def __call__(
        self, frames: Float[Array, "time channels *grid"]
    ) -> Float[Array, "time hidden *grid"]:
        """Features `(time, hidden_channels, *grid)` after every frame."""
        return jax.vmap(self.features)(self.hidden_states(frames))


class FlowEquivariantRNN(AbstractFrameRNN):
    """Flow-equivariant RNN (FERNN) for translation flows on a periodic 1-D or 2-D grid.

    Lifted recurrence (Keller 2025, Eq. 10; `⋆` circular cross-correlation without bias):

        h_t(ν) = σ(W ⋆ shift_ν(h_{t−1}(ν)) + U ⋆ f_t),   ν ∈ V,  h_{−1} = 0,
        y_t = pool_{ν ∈ V} h_t(ν),

    where `shift_ν` rolls the grid by `ν` (`jnp.roll`, content moves by `+ν`; velocity component
    `i` acts on grid axis `i`, in array order). With `learned_shifts=True`, `shift_ν` is replaced
    by a learned per-velocity kernel of size `(2·max|ν|+1)^d` shared over channels (G-RNN+, the
    paper's non-equivariant control), initialised `N(0, 1/(2·max|ν|+1)^d)`; `velocities=0`
    gives the G-RNN. Equivariance: `h_t[T f](ν) = T_{tν̂} h_t[f](ν − ν̂)` for `ν − ν̂ ∈ V`
    (`dynrnn.metrics.equivariance_error` measures it).

    **Arguments:**
    - `in_channels`: channels of the input frames.
    - `hidden_channels`: channels of the hidden state per velocity.
    - `velocities`: `r` for `V = {−r..r}^d` (`(2r+1)^d` velocities), or a sequence of integer
      velocity vectors of length `spatial_dims`.
    - `kernel_size`: odd side length of the `U` and `W` kernels (3 in the paper).
    - `spatial_dims`: 1 or 2.
    - `activation`: `"relu"` (paper, Moving MNIST) or `"tanh"` (paper, KTH).
    - `pool`: `"max"` (paper), `"mean"` or `"sum"` over velocities.
    - `learned_shifts`: the G-RNN+ control.
    - `key`: PRNG key for the weights (PyTorch's default convolution initialisation).
    - `dtype`: parameter dtype (default: JAX's default float).

    **Raises:** `DynrnnValueError`/`DynrnnTypeError` for non-positive sizes, an even kernel size,
    `spatial_dims` other than 1/2, unknown activation or pooling, or a bad velocity set; calling
    the model checks the frames (rank, channel count, grid at least as large as the kernels).
    """

    U: Float[Array, "hidden in *kernel"]
    W: Float[Array, "hidden hidden *kernel"]
    shift_kernels: Float[Array, " n_vel *shift_kernel"] | None
    velocities: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    hidden_channels: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)
    spatial_dims: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    pool: str = eqx.field(static=True)
    learned_shifts: bool = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        *,
        velocities: int | Sequence,
        kernel_size: int = 3,
        spatial_dims: int = 2,
        activation: str = "relu",
        pool: str = "max",
        learned_shifts: bool = False,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(in_channels, "in_channels", integer=True)
        check_positive(hidden_channels, "hidden_channels", integer=True)
        check_positive(kernel_size, "kernel_size", integer=True)
        if kernel_size % 2 != 1:
            raise DynrnnValueError(
                f"`kernel_size` must be odd (a centred circular kernel), got {kernel_size}."
            )
        if spatial_dims not in (1, 2):
            raise DynrnnValueError(f"`spatial_dims` must be 1 or 2, got {spatial_dims!r}.")
        if activation not in _ACTIVATIONS:
            raise DynrnnValueError(
                f"`activation` must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        if pool not in _POOLS:
            raise DynrnnValueError(f"`pool` must be one of {_POOLS}, got {pool!r}.")
        self.velocities = velocity_set(velocities, spatial_dims)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.spatial_dims = spatial_dims
        self.activation = activation
        self.pool = pool
        self.learned_shifts = bool(learned_shifts)
        dtype = dtype or jnp.result_type(float)
        ku, kw, ks = jr.split(key, 3)
        ksz = (kernel_size,) * spatial_dims
        self.U = _uniform_conv_init(ku, (hidden_channels, in_channels) + ksz, dtype)
        self.W = _uniform_conv_init(kw, (hidden_channels, hidden_channels) + ksz, dtype)
        if self.learned_shifts:
            side = 2 * self.max_speed + 1
            std = 1.0 / math.sqrt(side**spatial_dims)
            self.shift_kernels = std * jr.normal(
                ks, (len(self.velocities),) + (side,) * spatial_dims, dtype
            )
        else:
            self.shift_kernels = None

    @property
    def n_velocities(self) -> int:
        return len(self.velocities)

    @property
    def max_speed(self) -> int:
        """`max_ν max_i |ν_i|`, the largest velocity component in `V`."""
        return max(abs(c) for v in self.velocities for c in v)

    def _min_grid(self) -> int:
        side = 2 * self.max_speed + 1 if self.learned_shifts else 1
        return max(self.kernel_size, side)

    def check_frames(self, frames, name: str = "frames"):
        return _check_frames(
            frames, name, channels=self.in_channels, spatial_dims=self.spatial_dims,
            min_grid=self._min_grid(),
        )

    def initial_hidden(self, grid, dtype=None):
        dtype = dtype or self.W.dtype
        return jnp.zeros((self.n_velocities, self.hidden_channels) + tuple(grid), dtype)

    def _shift(self, h: Float[Array, "n_vel hidden *grid"]) -> Float[Array, "n_vel hidden *grid"]:
        axes = tuple(range(1, 1 + self.spatial_dims))
        if not self.learned_shifts:
            return jnp.stack(
                [jnp.roll(h[i], v, axis=axes) for i, v in enumerate(self.velocities)]
            )
        # Circular cross-correlation of each velocity's state with its own kernel, shared over
        # channels (as in the reference G-RNN+), written as a weighted sum of rolls: for these
        # tiny depthwise kernels this is several times faster on CPU than a grouped convolution.
        side = self.shift_kernels.shape[1]
        grid_axes = tuple(range(2, 2 + self.spatial_dims))
        out = jnp.zeros_like(h)
        for j in itertools.product(range(side), repeat=self.spatial_dims):
            w = self.shift_kernels[(slice(None),) + j].astype(h.dtype)
            rolled = jnp.roll(h, tuple(side // 2 - jj for jj in j), axis=grid_axes)
            out = out + w.reshape((-1,) + (1,) * (h.ndim - 1)) * rolled
        return out

    def advance(self, h):
        return self._shift(h)

    def cell(self, h, frame):
        """`h_t(ν) = σ(W ⋆ shift_ν(h_{t−1}(ν)) + U ⋆ f_t)` for all `ν` at once."""
        drive = circular_conv(frame[None], self.U)  # (1, hidden, *grid), broadcast over ν
        rec = circular_conv(self._shift(h), self.W)
        return _ACTIVATIONS[self.activation](rec + drive)

    def features(self, h):
        if self.pool == "max":
            return jnp.max(h, axis=0)
        if self.pool == "mean":
            return jnp.mean(h, axis=0)
        return jnp.sum(h, axis=0)

    @eqx.filter_jit
    def lifted(
        self, frames: Float[Array, "time channels *grid"]
    ) -> Float[Array, "time n_vel hidden *grid"]:
        """The lifted hidden states `h_t(ν)`, shape `(time, |V|, hidden_channels, *grid)`;
        `ν` runs over `self.velocities` in order."""
        return self.hidden_states(frames)


class FrameRNN(AbstractFrameRNN):
    """A plain (dense, Elman) RNN on flattened frames: the non-convolutional control.

        h_t = σ(W h_{t−1} + U vec(f_t) + b),   h_{−1} = 0,
        y_t = reshape(C h_t + c) ∈ R^{hidden_channels × grid}.

    It is neither translation- nor flow-equivariant; its grid features let it share the decoder
    and classifier heads of `FlowEquivariantRNN`.

    **Arguments:**
    - `in_channels`, `hidden_channels`: input channels and channels of the grid features.
    - `grid`: the grid shape (an int for 1-D), fixed because the weights act on whole frames.
    - `hidden_size`: size of the dense hidden state.
    - `activation`: `"relu"` or `"tanh"` (default).
    - `key`: PRNG key; weights `U(±1/√fan_in)` like PyTorch's `nn.RNN`/`nn.Linear`.

    **Raises:** `DynrnnValueError` for non-positive sizes or an unknown activation; calling it
    checks the frames' rank, channels and grid.
    """

    U: Float[Array, "hidden_size inputs"]
    W: Float[Array, "hidden_size hidden_size"]
    b: Float[Array, " hidden_size"]
    C: Float[Array, "outputs hidden_size"]
    c: Float[Array, " outputs"]
    grid: tuple[int, ...] = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    hidden_channels: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    spatial_dims: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        grid: int | Sequence[int],
        *,
        hidden_size: int = 256,
        activation: str = "tanh",
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(in_channels, "in_channels", integer=True)
        check_positive(hidden_channels, "hidden_channels", integer=True)
        check_positive(hidden_size, "hidden_size", integer=True)
        grid = (grid,) if isinstance(grid, int | np.integer) else tuple(int(g) for g in grid)
        if len(grid) not in (1, 2) or any(g < 1 for g in grid):
            raise DynrnnValueError(f"`grid` must be 1 or 2 positive sizes, got {grid}.")
        if activation not in _ACTIVATIONS:
            raise DynrnnValueError(
                f"`activation` must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        self.grid = grid
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.hidden_size = hidden_size
        self.spatial_dims = len(grid)
        self.activation = activation
        dtype = dtype or jnp.result_type(float)
        n_in = in_channels * math.prod(grid)
        n_out = hidden_channels * math.prod(grid)
        k = jr.split(key, 5)
        lim_h = 1.0 / math.sqrt(hidden_size)
        self.U = jr.uniform(k[0], (hidden_size, n_in), dtype, -lim_h, lim_h)
        self.W = jr.uniform(k[1], (hidden_size, hidden_size), dtype, -lim_h, lim_h)
        self.b = jr.uniform(k[2], (hidden_size,), dtype, -lim_h, lim_h)
        self.C = jr.uniform(k[3], (n_out, hidden_size), dtype, -lim_h, lim_h)
        self.c = jr.uniform(k[4], (n_out,), dtype, -lim_h, lim_h)

    def check_frames(self, frames, name: str = "frames"):
        frames = _check_frames(
            frames, name, channels=self.in_channels, spatial_dims=self.spatial_dims, min_grid=1
        )
        if tuple(frames.shape[2:]) != self.grid:
            raise DynrnnValueError(
                f"`{name}` must be on the grid {self.grid} this FrameRNN was built for, got "
                f"shape {tuple(frames.shape)}."
            )
        return frames

    def initial_hidden(self, grid, dtype=None):
        return jnp.zeros((self.hidden_size,), dtype or self.W.dtype)

    def advance(self, h):
        return h  # no notion of motion in a dense state

    def cell(self, h, frame):
        pre = self.W @ h + self.U @ frame.reshape(-1).astype(h.dtype) + self.b
        return _ACTIVATIONS[self.activation](pre)

    def features(self, h):
        return (self.C @ h + self.c).reshape((self.hidden_channels,) + self.grid)


class ConvDecoder(eqx.Module):
    """Per-frame decoder of grid features: `n_layers × [circular conv, ReLU]` then a circular
    conv to `out_channels`, all without bias (the reference's `decoder_conv`, Keller 2025 App. B).
    Being a stack of circular convolutions it commutes with translations.

    **Arguments:**
    - `in_channels`, `out_channels`: feature and output channels.
    - `spatial_dims`: 1 or 2; `kernel_size`: odd kernel side (3); `n_layers`: hidden layers.
    - `key`: PRNG key.
    """

    kernels: tuple[Float[Array, "cout cin *kernel"], ...]
    spatial_dims: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        spatial_dims: int = 2,
        kernel_size: int = 3,
        n_layers: int = 1,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_positive(in_channels, "in_channels", integer=True)
        check_positive(out_channels, "out_channels", integer=True)
        check_positive(n_layers, "n_layers", integer=True, strict=False)
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise DynrnnValueError(f"`kernel_size` must be odd and positive, got {kernel_size}.")
        if spatial_dims not in (1, 2):
            raise DynrnnValueError(f"`spatial_dims` must be 1 or 2, got {spatial_dims!r}.")
        dtype = dtype or jnp.result_type(float)
        keys = jr.split(key, n_layers + 1)
        ksz = (kernel_size,) * spatial_dims
        shapes = [(in_channels, in_channels)] * n_layers + [(out_channels, in_channels)]
        self.kernels = tuple(
            _uniform_conv_init(k, s + ksz, dtype) for k, s in zip(keys, shapes, strict=True)
        )
        self.spatial_dims = spatial_dims

    def __call__(self, x: Float[Array, " channels *grid"]) -> Float[Array, " out *grid"]:
        y = x[None]
        for k in self.kernels[:-1]:
            y = jax.nn.relu(circular_conv(y, k))
        return circular_conv(y, self.kernels[-1])[0]


class NextFramePredictor(eqx.Module):
    """Sequence-to-sequence next-frame prediction (Keller 2025, Sec. 5.1; the reference's
    `Seq2SeqFERNN`): the RNN reads the observed frames; then each future frame is decoded from the
    state carried one step forward by its own flow, and fed back as the next input:

        f̂_{t+1} = D(pool_ν shift_ν(h_t(ν))),   h_{t+1} = cell(h_t, f̂_{t+1}).

    Decoding `shift_ν(h_t(ν))` rather than `h_t(ν)` is what lets a flow-equivariant model move its
    prediction: under a flow `ν̂` it transforms with `T_{(t+1)ν̂}`, the frame's own time, while
    `h_t` transforms with `T_{tν̂}`. With a translation-equivariant decoder and `V` holding every
    velocity modulo the grid, the whole predictor is exactly flow-equivariant. (The reference
    reaches a similar alignment by feeding the last observed frame a second time, so that its
    recurrent term runs one step ahead of its input.)

    **Arguments:**
    - `rnn`: an `AbstractFrameRNN` (`FlowEquivariantRNN` or `FrameRNN`).
    - `decoder`: maps `(hidden_channels, *grid)` features to a frame `(in_channels, *grid)`
      (for example `ConvDecoder`).
    - `detach_feedback`: stop gradients through the fed-back predictions (the reference feeds
      `prev.detach()`), so training only sees each prediction's error, not how it perturbs the
      later inputs. Outputs are unchanged; default `False`.

    Called as `predictor(frames, n_future)` with `frames` `(time, channels, *grid)`; returns the
    `n_future` predicted frames `(n_future, channels, *grid)`, for times `time … time+n_future−1`.
    """

    rnn: AbstractFrameRNN
    decoder: eqx.Module
    detach_feedback: bool = eqx.field(static=True, default=False)

    def predict_next(self, h):
        """The predicted next frame from hidden state `h_t`."""
        return self.decoder(self.rnn.features(self.rnn.advance(h)))

    @eqx.filter_jit
    def __call__(
        self, frames: Float[Array, "time channels *grid"], n_future: int
    ) -> Float[Array, "n_future channels *grid"]:
        frames = self.rnn.check_frames(frames)
        check_positive(n_future, "n_future", integer=True)

        def read(h, f):
            return self.rnn.cell(h, f), None

        h0 = self.rnn.initial_hidden(tuple(frames.shape[2:]), frames.dtype)
        h, _ = jax.lax.scan(read, h0, frames)

        def generate(h, _):
            pred = self.predict_next(h).astype(frames.dtype)
            fed = jax.lax.stop_gradient(pred) if self.detach_feedback else pred
            return self.rnn.cell(h, fed), pred

        _, preds = jax.lax.scan(generate, h, None, length=n_future)
        return preds


class GridClassifierHead(eqx.Module):
    """Classification head: the last frame's features averaged over the grid (the reference KTH
    classifier's `AdaptiveAvgPool2d` after pooling over velocities), then a linear layer.

        logits = A · mean_grid(y_T) + a

    **Arguments:**
    - `hidden_channels`: feature channels; `n_classes`: number of classes; `key`: PRNG key.
    """

    A: Float[Array, "classes hidden"]
    a: Float[Array, " classes"]

    def __init__(self, hidden_channels: int, n_classes: int, *, key: PRNGKeyArray, dtype=None):
        check_positive(hidden_channels, "hidden_channels", integer=True)
        check_positive(n_classes, "n_classes", integer=True)
        dtype = dtype or jnp.result_type(float)
        k1, k2 = jr.split(key)
        lim = 1.0 / math.sqrt(hidden_channels)
        self.A = jr.uniform(k1, (n_classes, hidden_channels), dtype, -lim, lim)
        self.a = jr.uniform(k2, (n_classes,), dtype, -lim, lim)

    def __call__(self, features: Float[Array, "time hidden *grid"]) -> Float[Array, " classes"]:
        last = features[-1]
        pooled = jnp.mean(last.reshape(last.shape[0], -1), axis=1)
        return self.A @ pooled + self.a
