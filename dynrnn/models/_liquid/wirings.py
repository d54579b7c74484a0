"""Wirings of liquid networks: which neuron feeds which, and with what polarity.

A wiring is a directed graph over `units` neurons (plus the `input_dim` sensory inputs) with
entries in {−1, 0, +1} at `(source, destination)`. The first `output_dim` neurons are the
motor (output) neurons. The generators replay the random draws of the reference
implementation `ncps.wirings` (Lechner et al., "Neural circuit policies enabling auditable
autonomy", Nature Machine Intelligence 2020) call for call, so the same arguments and seeds give
the same adjacency matrices:

- `FullyConnected`: every pair, polarity from {−1, +1, +1} with `numpy.random.default_rng(seed)`;
- `Random`: `round(units²(1 − sparsity))` synapses without replacement, same polarity rule;
- `NCP`: four layers sensory → inter → command → motor with fan-outs/fan-ins, drawn with the
  legacy `numpy.random.RandomState(seed)`; neuron ids are motor first, then command, then inter;
- `AutoNCP`: an `NCP` sized from `units`, `output_size` and a sparsity level.

Each generator is a small frozen description; `build(input_dim)` draws the graph and returns a
`Wiring`, the built (immutable, hashable) adjacency that the models keep as a static field.
"""

from __future__ import annotations

import abc
import dataclasses
import functools

import numpy as np

from ..._errors import DynrnnTypeError, DynrnnValueError


def _check_count(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DynrnnTypeError(f"`{name}` must be an integer, got {value!r}.")
    if value < minimum:
        raise DynrnnValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


def _frozen(a) -> np.ndarray:
    a = np.array(a, dtype=np.int8, copy=True)
    a.setflags(write=False)
    return a


@dataclasses.dataclass(frozen=True, eq=False)
class Wiring:
    """A built wiring: the adjacency matrices and the layer structure.

    **Arguments:**
    - `adjacency`: `(units, units)` array with entries in {−1, 0, +1}; entry `(i, j)` is the
      polarity of the synapse from neuron `i` to neuron `j` (0: none).
    - `sensory_adjacency`: `(input_dim, units)` array, the synapses from the inputs.
    - `output_dim`: number of motor neurons; they are the neurons `0 … output_dim − 1`.
    - `layers`: the neuron ids of each layer in the order the signal flows (for NCP: inter,
      command, motor); a wiring without layers has one layer of all neurons. A wired `CfC`
      runs one cell per layer.

    **Raises:** `ValueError` if the shapes or entries are inconsistent.
    """

    adjacency: np.ndarray
    sensory_adjacency: np.ndarray
    output_dim: int
    layers: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        adj = _frozen(self.adjacency)
        sens = _frozen(self.sensory_adjacency)
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
            raise DynrnnValueError(
                f"`adjacency` must be a square (units, units) matrix, got shape {adj.shape}."
            )
        units = adj.shape[0]
        if sens.size == 0:  # no inputs (JSON turns a (0, units) matrix into [])
            sens = _frozen(np.zeros((0, units), np.int8))
        if sens.ndim != 2 or sens.shape[1] != units:
            raise DynrnnValueError(
                f"`sensory_adjacency` must have shape (input_dim, {units}), got {sens.shape}."
            )
        for name, a in (("adjacency", adj), ("sensory_adjacency", sens)):
            if not np.isin(a, (-1, 0, 1)).all():
                raise DynrnnValueError(f"`{name}` entries must be -1, 0 or +1.")
        _check_count(self.output_dim, "output_dim")
        if self.output_dim > units:
            raise DynrnnValueError(
                f"`output_dim` must be <= units={units}, got {self.output_dim}."
            )
        layers = tuple(tuple(int(i) for i in layer) for layer in self.layers)
        flat = sorted(i for layer in layers for i in layer)
        if flat != list(range(units)):
            raise DynrnnValueError(
                f"`layers` must partition the neurons 0..{units - 1}, got {layers}."
            )
        object.__setattr__(self, "adjacency", adj)
        object.__setattr__(self, "sensory_adjacency", sens)
        object.__setattr__(self, "output_dim", int(self.output_dim))
        object.__setattr__(self, "layers", layers)

    @classmethod
    def from_adjacency(cls, adjacency, sensory_adjacency, output_dim=None, layers=None):
        """A wiring from given matrices (`output_dim` defaults to all units, `layers` to one)."""
        adjacency = np.asarray(adjacency)
        units = adjacency.shape[0]
        output_dim = units if output_dim is None else output_dim
        layers = (tuple(range(units)),) if layers is None else layers
        return cls(np.sign(adjacency), np.sign(np.asarray(sensory_adjacency)), output_dim, layers)

    @property
    def units(self) -> int:
        return self.adjacency.shape[0]

    @property
    def input_dim(self) -> int:
        return self.sensory_adjacency.shape[0]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def synapse_count(self) -> int:
        """Number of synapses between the neurons."""
        return int(np.abs(self.adjacency).sum())

    @property
    def sensory_synapse_count(self) -> int:
        """Number of synapses from the inputs to the neurons."""
        return int(np.abs(self.sensory_adjacency).sum())

    def build(self, input_dim: int) -> Wiring:
        """Return `self` after checking that it was built for `input_dim` inputs."""
        if input_dim != self.input_dim:
            raise DynrnnValueError(
                f"the wiring was built for input_dim={self.input_dim} inputs, but the model "
                f"has input size {input_dim}."
            )
        return self

    def to_dict(self) -> dict:
        """Plain lists and integers (JSON), accepted back by the models as a wiring."""
        return {
            "adjacency": self.adjacency.tolist(),
            "sensory_adjacency": self.sensory_adjacency.tolist(),
            "output_dim": self.output_dim,
            "layers": [list(layer) for layer in self.layers],
        }

    def layer_input_masks(self) -> tuple[np.ndarray, ...]:
        """Per layer, the `(layer size, layer inputs + layer size)` 0/1 mask of a wired CfC.

        Layer 0 reads the sensory inputs, layer `l > 0` the neurons of layer `l − 1`, through
        the synapses of the wiring; every layer is fully recurrent within itself (ncps
        `WiredCfCCell`).
        """
        masks = []
        for k, layer in enumerate(self.layers):
            ids = list(layer)
            if k == 0:
                into = self.sensory_adjacency[:, ids]
            else:
                into = self.adjacency[np.ix_(list(self.layers[k - 1]), ids)]
            full = np.concatenate([np.abs(into), np.ones((len(ids), len(ids)), np.int8)], 0)
            masks.append(full.T.astype(np.float64))
        return tuple(masks)

    def __hash__(self):
        return hash(
            (
                self.adjacency.tobytes(),
                self.adjacency.shape,
                self.sensory_adjacency.tobytes(),
                self.sensory_adjacency.shape,
                self.output_dim,
                self.layers,
            )
        )

    def __eq__(self, other):
        if not isinstance(other, Wiring):
            return NotImplemented
        return (
            self.output_dim == other.output_dim
            and self.layers == other.layers
            and np.array_equal(self.adjacency, other.adjacency)
            and np.array_equal(self.sensory_adjacency, other.sensory_adjacency)
        )

    def __repr__(self):
        return (
            f"Wiring(units={self.units}, input_dim={self.input_dim}, "
            f"output_dim={self.output_dim}, synapses={self.synapse_count}, "
            f"sensory_synapses={self.sensory_synapse_count}, layers={len(self.layers)})"
        )


class AbstractWiring(abc.ABC):
    """A wiring generator: sizes and a seed; `build(input_dim)` draws a `Wiring`."""

    @property
    @abc.abstractmethod
    def units(self) -> int:
        """Number of neurons (the state size of the model)."""

    @property
    @abc.abstractmethod
    def output_dim(self) -> int:
        """Number of motor neurons (the first `output_dim` neurons)."""

    @abc.abstractmethod
    def build(self, input_dim: int) -> Wiring:
        """Draw the wiring for `input_dim` sensory inputs (deterministic given the seed)."""


def _build_cached(cls):
    """Wirings are drawn in Python loops (to replay ncps's draws); draw each one once."""
    if "build" not in cls.__dict__:
        return cls
    build = cls.build

    @functools.lru_cache(maxsize=64)
    def cached(self, input_dim):
        return build(self, input_dim)

    @functools.wraps(build)
    def wrapper(self, input_dim):
        input_dim = _check_count(input_dim, "input_dim", minimum=0)
        return cached(self, input_dim)

    cls.build = wrapper
    return cls


@_build_cached
@dataclasses.dataclass(frozen=True)
class FullyConnected(AbstractWiring):
    """Every neuron feeds every neuron, and every input feeds every neuron.

    Polarities are drawn from {−1, +1, +1} (two thirds excitatory) with
    `numpy.random.default_rng(seed)`, first for the `(source, destination)` pairs of neurons in
    row-major order, then for the sensory pairs, as `ncps.wirings.FullyConnected`.

    **Arguments:**
    - `units`: number of neurons.
    - `output_dim`: number of motor neurons (default: all).
    - `seed`: the polarity seed (ncps's `erev_init_seed`, default 1111).
    - `self_connections`: whether neurons feed themselves.
    """

    n_units: int
    n_output: int | None = None
    seed: int = 1111
    self_connections: bool = True

    def __init__(self, units, output_dim=None, *, seed=1111, self_connections=True):
        units = _check_count(units, "units")
        output_dim = units if output_dim is None else _check_count(output_dim, "output_dim")
        if output_dim > units:
            raise DynrnnValueError(f"`output_dim` must be <= units={units}, got {output_dim}.")
        object.__setattr__(self, "n_units", units)
        object.__setattr__(self, "n_output", output_dim)
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "self_connections", bool(self_connections))

    @property
    def units(self):
        return self.n_units

    @property
    def output_dim(self):
        return self.n_output

    def build(self, input_dim):
        rng = np.random.default_rng(self.seed)
        adj = np.zeros((self.units, self.units), np.int8)
        for src in range(self.units):
            for dest in range(self.units):
                if src == dest and not self.self_connections:
                    continue
                adj[src, dest] = rng.choice([-1, 1, 1])
        sens = np.zeros((input_dim, self.units), np.int8)
        for src in range(input_dim):
            for dest in range(self.units):
                sens[src, dest] = rng.choice([-1, 1, 1])
        return Wiring(adj, sens, self.output_dim, (tuple(range(self.units)),))


@_build_cached
@dataclasses.dataclass(frozen=True)
class Random(AbstractWiring):
    """`round(units²(1 − sparsity))` random synapses (and likewise from the inputs).

    Synapses are drawn without replacement with `numpy.random.default_rng(seed)`, polarities
    from {−1, +1, +1}, as `ncps.wirings.Random` (which draws two polarities per sensory synapse
    and keeps the second; that draw is replayed so the graphs agree).

    **Arguments:**
    - `units`: number of neurons; `output_dim`: motor neurons (default: all).
    - `sparsity`: fraction of absent synapses, in [0, 1).
    - `seed`: default 1111.
    """

    n_units: int
    n_output: int | None = None
    sparsity: float = 0.0
    seed: int = 1111

    def __init__(self, units, output_dim=None, *, sparsity=0.0, seed=1111):
        units = _check_count(units, "units")
        output_dim = units if output_dim is None else _check_count(output_dim, "output_dim")
        if output_dim > units:
            raise DynrnnValueError(f"`output_dim` must be <= units={units}, got {output_dim}.")
        if not 0.0 <= sparsity < 1.0:
            raise DynrnnValueError(f"`sparsity` must be in [0, 1), got {sparsity!r}.")
        object.__setattr__(self, "n_units", units)
        object.__setattr__(self, "n_output", output_dim)
        object.__setattr__(self, "sparsity", float(sparsity))
        object.__setattr__(self, "seed", int(seed))

    @property
    def units(self):
        return self.n_units

    @property
    def output_dim(self):
        return self.n_output

    def build(self, input_dim):
        rng = np.random.default_rng(self.seed)
        n = self.units
        adj = np.zeros((n, n), np.int8)
        pairs = [(s, d) for s in range(n) for d in range(n)]
        count = int(np.round(n * n * (1 - self.sparsity)))
        for src, dest in rng.choice(pairs, size=count, replace=False):
            adj[src, dest] = rng.choice([-1, 1, 1])
        sens = np.zeros((input_dim, n), np.int8)
        pairs = [(s, d) for s in range(input_dim) for d in range(n)]
        count = int(np.round(input_dim * n * (1 - self.sparsity)))
        if count > 0:
            for src, dest in rng.choice(pairs, size=count, replace=False):
                rng.choice([-1, 1, 1])
                sens[src, dest] = rng.choice([-1, 1, 1])
        return Wiring(adj, sens, self.output_dim, (tuple(range(n)),))


@_build_cached
@dataclasses.dataclass(frozen=True)
class NCP(AbstractWiring):
    """A neural circuit policy: sensory → inter → command (recurrent) → motor.

    Neuron ids are motor `0 … m−1`, command `m … m+c−1`, inter `m+c … units−1` (ncps order).
    With the legacy `numpy.random.RandomState(seed)`, in this order:
    1. each input feeds `sensory_fanout` distinct inter neurons (polarity ±1, P = ½); inter
       neurons left without input get `clip(⌊inputs·sensory_fanout/inter⌋, 1, inputs)` inputs;
    2. each inter neuron feeds `inter_fanout` command neurons; unreached command neurons get
       `clip(⌊inter·inter_fanout/command⌋, 1, command)` inter inputs;
    3. `recurrent_command_synapses` random command → command synapses;
    4. each motor neuron receives `motor_fanin` command neurons; command neurons that reach no
       motor neuron get `clip(⌊motor·motor_fanin/command⌋, 1, motor)` motor targets.

    **Arguments:** `inter_neurons`, `command_neurons`, `motor_neurons`, `sensory_fanout`,
    `inter_fanout`, `recurrent_command_synapses`, `motor_fanin`, `seed` (default 22222).

    **Raises:** `ValueError` if a fan-out or fan-in exceeds the size of its target layer.
    """

    inter_neurons: int
    command_neurons: int
    motor_neurons: int
    sensory_fanout: int
    inter_fanout: int
    recurrent_command_synapses: int
    motor_fanin: int
    seed: int = 22222

    def __post_init__(self):
        for f in dataclasses.fields(self):
            minimum = 0 if f.name in ("recurrent_command_synapses", "seed") else 1
            object.__setattr__(self, f.name, _check_count(getattr(self, f.name), f.name,
                                                          minimum=minimum))
        if self.motor_fanin > self.command_neurons:
            raise DynrnnValueError(
                f"`motor_fanin`={self.motor_fanin} exceeds the {self.command_neurons} command "
                "neurons."
            )
        if self.sensory_fanout > self.inter_neurons:
            raise DynrnnValueError(
                f"`sensory_fanout`={self.sensory_fanout} exceeds the {self.inter_neurons} inter "
                "neurons."
            )
        if self.inter_fanout > self.command_neurons:
            raise DynrnnValueError(
                f"`inter_fanout`={self.inter_fanout} exceeds the {self.command_neurons} command "
                "neurons."
            )

    @property
    def units(self):
        return self.inter_neurons + self.command_neurons + self.motor_neurons

    @property
    def output_dim(self):
        return self.motor_neurons

    def neuron_ids(self):
        """`(inter, command, motor)` neuron ids."""
        m, c = self.motor_neurons, self.command_neurons
        motor = list(range(0, m))
        command = list(range(m, m + c))
        inter = list(range(m + c, self.units))
        return inter, command, motor

    def build(self, input_dim):
        if input_dim < 1:
            raise DynrnnValueError(
                f"an NCP wiring needs at least one input, got input_dim={input_dim}."
            )
        rng = np.random.RandomState(self.seed)
        inter, command, motor = self.neuron_ids()
        sensory = list(range(input_dim))
        adj = np.zeros((self.units, self.units), np.int8)
        sens = np.zeros((input_dim, self.units), np.int8)

        def fan_in(n_src, fanout, n_dest, clip_to):
            return int(np.clip(int(n_src * fanout / n_dest), 1, clip_to))

        # 1. sensory -> inter
        unreached = list(inter)
        for src in sensory:
            for dest in rng.choice(inter, size=self.sensory_fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                sens[src, dest] = rng.choice([-1, 1])
        k = fan_in(input_dim, self.sensory_fanout, self.inter_neurons, input_dim)
        for dest in unreached:
            for src in rng.choice(sensory, size=k, replace=False):
                sens[src, dest] = rng.choice([-1, 1])
        # 2. inter -> command
        unreached = list(command)
        for src in inter:
            for dest in rng.choice(command, size=self.inter_fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                adj[src, dest] = rng.choice([-1, 1])
        # ncps clips this fan-in by the number of command (not inter) neurons; replayed as is.
        k = fan_in(self.inter_neurons, self.inter_fanout, self.command_neurons,
                   self.command_neurons)
        for dest in unreached:
            for src in rng.choice(inter, size=k, replace=False):
                adj[src, dest] = rng.choice([-1, 1])
        # 3. command -> command
        for _ in range(self.recurrent_command_synapses):
            src = rng.choice(command)
            dest = rng.choice(command)
            adj[src, dest] = rng.choice([-1, 1])
        # 4. command -> motor
        unreached = list(command)
        for dest in motor:
            for src in rng.choice(command, size=self.motor_fanin, replace=False):
                if src in unreached:
                    unreached.remove(src)
                adj[src, dest] = rng.choice([-1, 1])
        k = fan_in(self.motor_neurons, self.motor_fanin, self.command_neurons,
                   self.motor_neurons)
        for src in unreached:
            for dest in rng.choice(motor, size=k, replace=False):
                adj[src, dest] = rng.choice([-1, 1])
        return Wiring(adj, sens, self.motor_neurons, (tuple(inter), tuple(command), tuple(motor)))


@dataclasses.dataclass(frozen=True, init=False)
class AutoNCP(NCP):
    """An `NCP` sized from the number of neurons, outputs and a sparsity level.

    With density ρ = 1 − `sparsity_level`: command = max(⌊0.4(units − output_size)⌋, 1),
    inter = the rest, sensory fan-out max(⌊inter·ρ⌋, 1), inter fan-out and motor fan-in
    max(⌊command·ρ⌋, 1), recurrent command synapses max(⌊2·command·ρ⌋, 1) (ncps `AutoNCP`).

    **Arguments:**
    - `units`: total number of neurons; `output_size`: motor neurons, `< units − 2`.
    - `sparsity_level`: in [0.1, 1.0] (default 0.5); `seed`: default 22222.

    **Raises:** `ValueError` for `output_size >= units − 2` or a sparsity level out of range.
    """

    def __init__(self, units, output_size, sparsity_level=0.5, seed=22222):
        units = _check_count(units, "units")
        output_size = _check_count(output_size, "output_size")
        if output_size >= units - 2:
            raise DynrnnValueError(
                f"`output_size` must be < units - 2 = {units - 2}, got output_size={output_size} "
                f"with units={units}."
            )
        if not 0.1 <= sparsity_level <= 1.0:
            raise DynrnnValueError(
                f"`sparsity_level` must be in [0.1, 1.0], got {sparsity_level!r}."
            )
        density = 1.0 - sparsity_level
        rest = units - output_size
        command = max(int(0.4 * rest), 1)
        inter = rest - command
        super().__init__(
            inter_neurons=inter,
            command_neurons=command,
            motor_neurons=output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )


def as_wiring(wiring, input_dim: int) -> Wiring:
    """Build a wiring generator (or check a built `Wiring`) for `input_dim` inputs."""
    if isinstance(wiring, Wiring | AbstractWiring):
        return wiring.build(input_dim)
    if isinstance(wiring, dict) and set(wiring) == {"adjacency", "sensory_adjacency",
                                                    "output_dim", "layers"}:
        return Wiring(**wiring).build(input_dim)
    if isinstance(wiring, dict) and "type" in wiring:
        # A config table, e.g. {"type": "AutoNCP", "units": 16, "output_size": 3}.
        kinds = {"FullyConnected": FullyConnected, "Random": Random, "NCP": NCP,
                 "AutoNCP": AutoNCP}
        kw = dict(wiring)
        kind = kw.pop("type")
        if kind not in kinds:
            raise DynrnnValueError(
                f"wiring `type` must be one of {', '.join(kinds)}, got {kind!r}."
            )
        return kinds[kind](**kw).build(input_dim)
    raise DynrnnTypeError(
        "`wiring` must be a dynrnn wiring (dr.models.wirings.FullyConnected, NCP, AutoNCP, "
        "Random or Wiring) or a table with a `type`, got "
        f"{type(wiring).__name__}; convert ncps wirings with "
        "dr.interop.wiring_from_ncps."
    )
