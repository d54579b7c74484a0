"""Training across several JAX processes (one per host, or several on one machine).

Every process runs the same script: `jax.distributed.initialize()` first, then `dr.fit(...,
mesh=Mesh(jax.devices(), ("batch",)))` (or `dr.fit_ensemble(..., mesh=...)`), whose mesh then
spans the devices of all processes. `Processes(mesh)` is what a fit needs to know about them:

- **Data.** Every process holds the whole series and the same initial model. The batch of
  update `s` is drawn inside the compiled update from `fold_in(key, s)`, the same on every
  process, and each device differentiates its own slice of it (`data_parallel`); so a fit on
  two processes of one device each equals, update by update, a fit in one process on a mesh of
  two devices. An ensemble's members are placed with each process materialising only the
  members of its own devices (`jax.make_array_from_callback`).
- **One writer.** The process of index 0 (`writer`) writes checkpoints, run folders, history
  and figures and shows the progress bar. Resuming, it reads the checkpoint and every process
  gets the same bytes (`on_writer`), so the other hosts need not see its disk.
- **Agreement.** `agree(fn)` runs `fn` in every process and exchanges the outcome: if any
  process raised, every process raises the first such error (same type, same message), so a
  failure on one host (bad data, a checkpoint folder that cannot be written, a hook) stops all
  of them instead of leaving the others waiting in a collective. `same=` also compares a JSON
  description of the settings (the data's fingerprint included) across processes, and
  `vote=True` combines the hooks' "stop" answers. Divergence needs no exchange: the NaN guard's
  marker is part of the replicated training state, so every process sees it at the same update.
- **Local views.** After each host call the hooks see process-local copies of the replicated
  parameters (`fetch`), so that nothing a hook does with the model (evaluate it, save it)
  starts a computation over the devices of other processes.

With a mesh of one process (or none) all of this reduces to the single-process behaviour.
"""

from __future__ import annotations

import builtins
import json
import os
import struct

import jax
import numpy as np

from .. import _errors
from .._errors import DynrnnError, DynrnnValueError


_ERRORS = {cls.__name__: cls for cls in (
    _errors.DynrnnError, _errors.DynrnnValueError, _errors.DynrnnTypeError,
    _errors.CheckpointError, _errors.TrainingDivergedError,
)}


def _mesh_processes(mesh) -> list[int]:
    return sorted({d.process_index for d in np.asarray(mesh.devices).flat})


class Processes:
    """The processes whose devices make up a fit's mesh (see the module docstring).

    **Arguments:**
    - `mesh`: the fit's `jax.sharding.Mesh`, or `None` (one process).

    **Attributes:** `count` (processes in the mesh), `index` (this one's, `jax.process_index()`),
    `writer` (whether this process writes files and shows progress), `spans` (`count > 1`).
    """

    def __init__(self, mesh: jax.sharding.Mesh | None = None):
        self.mesh = mesh
        indices = [0] if mesh is None else _mesh_processes(mesh)
        self.count = len(indices)
        self.index = jax.process_index() if self.count > 1 else indices[0]
        self.writer = self.index == indices[0]
        if self.count > 1 and self.count != jax.process_count():
            raise DynrnnValueError(
                f"`mesh` spans {self.count} of the {jax.process_count()} JAX processes; a mesh "
                "over several processes must include devices of all of them "
                "(Mesh(jax.devices(), ...))."
            )

    @property
    def spans(self) -> bool:
        return self.count > 1

    def exchange(self, blob: bytes) -> list[bytes]:
        """Every process's `blob`, in process order (a collective: all processes call it)."""
        if not self.spans:
            return [blob]
        from jax.experimental import multihost_utils

        sizes = multihost_utils.process_allgather(np.asarray([len(blob)], np.int64))
        sizes = np.asarray(sizes).reshape(-1)
        buf = np.zeros(int(sizes.max()) or 1, np.uint8)
        buf[: len(blob)] = np.frombuffer(blob, np.uint8)
        gathered = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
        return [gathered[i, : int(n)].tobytes() for i, n in enumerate(sizes)]

    def agree(self, fn, *, same=None, vote: bool = False):
        """Run `fn()` in every process; raise the first error of any process in all of them.

        **Arguments:**
        - `fn`: a function of no arguments.
        - `same`: optional `same(value) -> JSON`; the processes' descriptions must be equal,
          else a `ValueError` names the first setting in which a process differs from the
          writer.
        - `vote`: return whether `fn()` was true in any process (the hooks' "stop").

        **Returns:** `fn()`'s value in this process (or the vote).
        """
        error = value = None
        try:
            value = fn()
            record = {"same": same(value) if same is not None and self.spans else None,
                      "vote": bool(value) if vote else False}
        except Exception as e:
            error = e
            record = {"error": [type(e).__name__, str(e)]}
        if not self.spans:
            if error is not None:
                raise error
            return bool(value) if vote else value
        records = [json.loads(b) for b in self.exchange(json.dumps(record).encode())]
        for i, r in enumerate(records):
            if "error" in r:
                if i == self.index and error is not None:
                    raise error
                raise _rebuild(*r["error"], i)
        if same is not None:
            for i, r in enumerate(records[1:], start=1):
                if r["same"] != records[0]["same"]:
                    from ._hooks import first_difference

                    where = (first_difference(records[0]["same"], r["same"]) or ("",))[0]
                    what = ("data (every process must pass the same series)" if where == "data"
                            else f"setting {where!r}")
                    raise DynrnnValueError(
                        f"process {i} was given other {what} than process 0; every process "
                        "of a fit over several processes runs the same call with the same "
                        "data, model, key and settings."
                    )
        if vote:
            return any(r["vote"] for r in records)
        return value

    def on_writer(self, fn) -> bytes | None:
        """Run `fn() -> bytes | None` in the writer only; every process gets its result, or
        raises its error (a collective: all processes call it)."""
        if not self.spans:
            return fn()
        if self.writer:
            try:
                value = fn()
                blob = b"N" if value is None else b"V" + bytes(value)
            except Exception as e:
                blob = b"E" + json.dumps([type(e).__name__, str(e)]).encode()
                error = e
            else:
                error = None
        else:
            blob, error = b"", None
        out = self.exchange(blob)[0]  # the writer is process 0 (the mesh spans all)
        if out[:1] == b"E":
            if error is not None:
                raise error
            raise _rebuild(*json.loads(out[1:]), 0)
        return None if out[:1] == b"N" else out[1:]

    def place(self, tree, spec=None):
        """`tree`'s arrays on the mesh with `PartitionSpec` `spec` (default replicated); with
        several processes each process materialises only its own devices' parts."""
        from jax.sharding import NamedSharding, PartitionSpec

        sharding = NamedSharding(self.mesh, PartitionSpec() if spec is None else spec)
        if not self.spans:
            return jax.device_put(tree, sharding)

        def one(x):
            if not isinstance(x, jax.Array | np.ndarray):
                return x
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                impl = jax.random.key_impl(x)
                return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=impl)
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

        return jax.tree.map(one, tree)

    def fetch(self, tree):
        """Process-local copies of `tree`'s arrays: a replicated array's own copy, a sharded
        one gathered from all processes (a collective when any array is sharded)."""
        if not self.spans:
            return tree

        def one(x):
            if not isinstance(x, jax.Array) or x.is_fully_addressable:
                return x
            if x.is_fully_replicated:
                return x.addressable_data(0)
            from jax.experimental import multihost_utils

            return jax.numpy.asarray(multihost_utils.process_allgather(x, tiled=True))

        return jax.tree.map(one, tree)


def _rebuild(name: str, message: str, index: int) -> Exception:
    """The error another process raised, as this process's own (same type and message)."""
    cls = _ERRORS.get(name) or getattr(builtins, name, None)
    try:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError
        err = cls(message)
    except Exception:  # a type of the user's own, or one whose constructor wants more
        err = DynrnnError(f"{name}: {message}")
    err.add_note(f"(raised by process {index} of the fit)")
    return err


def initialize() -> jax.sharding.Mesh:
    """`jax.distributed.initialize()` from the environment, and a `("batch",)` mesh over the
    devices of all processes (what `dynrnn fit --distributed` trains on).

    On SLURM (and Open MPI, Cloud TPU, Kubernetes) JAX finds the coordinator, the number of
    processes and this process's index itself. Elsewhere set `JAX_COORDINATOR_ADDRESS`
    (`host:port` of process 0, read by JAX), `DYNRNN_NUM_PROCESSES` and `DYNRNN_PROCESS_ID`.

    **Returns:** `Mesh(jax.devices(), ("batch",))`.

    **Raises:** `DynrnnValueError` when the environment does not say how to connect.
    """
    from jax.sharding import Mesh

    def env_int(name):
        value = os.environ.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise DynrnnValueError(f"environment variable {name}={value!r} must be an integer.")

    n, i = env_int("DYNRNN_NUM_PROCESSES"), env_int("DYNRNN_PROCESS_ID")
    try:
        jax.distributed.initialize(num_processes=n, process_id=i)
    except ValueError as e:
        raise DynrnnValueError(
            f"cannot start the distributed fit ({e}). Outside SLURM/Open MPI set "
            "JAX_COORDINATOR_ADDRESS=host:port (process 0's address), DYNRNN_NUM_PROCESSES "
            "and DYNRNN_PROCESS_ID in every process."
        ) from e
    return Mesh(np.asarray(jax.devices()), ("batch",))


def pack(blobs: list[bytes]) -> bytes:
    """Several byte strings as one (length-prefixed)."""
    return b"".join(struct.pack("<Q", len(b)) + b for b in blobs)


def unpack(blob: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack("<Q", blob[pos: pos + 8])
        out.append(blob[pos + 8: pos + 8 + n])
        pos += 8 + n
    return out
