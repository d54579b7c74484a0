"""`dr.save` / `dr.load`: Equinox leaf serialisation plus a JSON description, no pickle.

File layout (one file, written atomically through a temporary file and `os.replace`):

    b"DYNRNN\\x01\\n"             8-byte magic
    uint64 little-endian         length of the JSON header
    JSON header                  format version, the model's description, user metadata
    uint64 little-endian         length of the payload
    payload                      `eqx.tree_serialise_leaves` of the model, then extra trees
    32 bytes                     SHA-256 of header + payload

A truncated or corrupt file fails the length or checksum test and raises `CheckpointError`.
The header (version 2) describes the model by its public class name and constructor
arguments, nested observation models and wirings included (`_describe.py`); `load` builds
that model and reads the leaves into it (`numpy.load` with `allow_pickle=False`). Version 1
files (dynrnn 0.1.0: private class paths, flat hyperparameters) are read through an alias table.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import struct
import tempfile
import warnings

import equinox as eqx
import numpy as np

from .._errors import CheckpointError, DynrnnTypeError
from . import _describe


MAGIC = b"DYNRNN\x01\n"


FORMAT_VERSION = 2


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never a mix."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temporary files of writes that were killed before their rename.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the permissions of any file the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def save(path, model, *, extra=None, **metadata) -> pathlib.Path:
    """Save `model` (and optionally `extra` pytrees such as an optimiser state) atomically.

    **Arguments:**
    - `path`: destination file (conventionally `.eqx`).
    - `model`: an Equinox module. Models of dynrnn are described by their public class name
      and constructor arguments, so `dr.load(path)` rebuilds them alone; a module that cannot
      be described (a user's own vector field inside a `NeuralODE`, for example) is saved with
      a warning, and loading it needs `like=`.
    - `extra`: optional pytree saved after the model (read back with `load(..., extra_like=)`).
    - `**metadata`: JSON-serialisable information stored in the header (config, step, ...).

    **Returns:** the path written.
    """
    if not isinstance(model, eqx.Module):
        raise DynrnnTypeError(f"`model` must be an Equinox module, got {type(model).__name__}.")
    try:
        description = _describe.encode(model)
    except _describe.NotDescribable as e:
        warnings.warn(
            f"{type(model).__name__} is saved without a description of its structure ({e}); "
            "`dr.load` will need `like=` (a model of the same structure).", stacklevel=2)
        description = None
    header = {
        "format": "dynrnn-checkpoint",
        "version": FORMAT_VERSION,
        "model": description,
        "class": type(model).__qualname__,
        "metadata": _json_safe(metadata),
        "has_extra": extra is not None,
    }
    hbytes = json.dumps(header, sort_keys=True).encode()
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    if extra is not None:
        eqx.tree_serialise_leaves(buf, extra)
    payload = buf.getvalue()
    body = hbytes + payload
    data = (
        MAGIC
        + struct.pack("<Q", len(hbytes))
        + hbytes
        + struct.pack("<Q", len(payload))
        + payload
        + hashlib.sha256(body).digest()
    )
    path = pathlib.Path(path)
    atomic_write_bytes(path, data)
    return path


def read_header(path, data: bytes | None = None) -> tuple[dict, bytes]:
    """Validate a checkpoint file (or its bytes `data`, read elsewhere: a fit over several
    processes reads the file in process 0 only) and return `(header, payload)`."""
    path = pathlib.Path(path)
    if data is None:
        if not path.exists():
            raise FileNotFoundError(f"checkpoint `path` {str(path)!r} does not exist.")
        data = path.read_bytes()
    if len(data) < len(MAGIC) + 8 or not data.startswith(MAGIC):
        raise CheckpointError(
            f"{str(path)!r} is not a dynrnn checkpoint (missing magic bytes; "
            f"{len(data)} bytes)."
        )
    pos = len(MAGIC)
    (hlen,) = struct.unpack("<Q", data[pos : pos + 8])
    pos += 8
    if pos + hlen + 8 > len(data):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated: header needs {hlen} bytes, file has "
            f"{len(data)} bytes."
        )
    hbytes = data[pos : pos + hlen]
    pos += hlen
    (plen,) = struct.unpack("<Q", data[pos : pos + 8])
    pos += 8
    if pos + plen + 32 != len(data):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or has trailing bytes: expected "
            f"{pos + plen + 32} bytes, found {len(data)}."
        )
    payload = data[pos : pos + plen]
    digest = data[pos + plen :]
    if hashlib.sha256(hbytes + payload).digest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: SHA-256 checksum mismatch.")
    try:
        header = json.loads(hbytes)
    except json.JSONDecodeError as e:  # pragma: no cover - checksum already passed
        raise CheckpointError(f"checkpoint {str(path)!r} has an unreadable header: {e}") from e
    return header, payload


def _skeleton(header: dict, path) -> eqx.Module:
    """The model a header describes, with freshly initialised parameters."""
    version = header.get("version")
    try:
        if version == 1:  # dynrnn 0.1.0: a private class path and flat constructor arguments
            hp = header.get("hyperparameters")
            if hp is None:
                raise CheckpointError("it stores no hyperparameters")
            if header.get("class") not in _describe.ALIASES:
                raise CheckpointError(f"class {header.get('class')!r} of dynrnn 0.1.0 is unknown")
            cls = _describe.resolve(header["class"])
            return _describe.build(cls, hp)
        if version != FORMAT_VERSION:
            raise CheckpointError(f"format version {version!r} is not known to this dynrnn")
        if header.get("model") is None:
            raise CheckpointError(
                f"{header.get('class')} was saved without a description of its structure")
        return _describe.decode(header["model"])
    except CheckpointError as e:
        raise CheckpointError(
            f"cannot rebuild the model of checkpoint {str(path)!r}: {e}. Pass `like=` (a model "
            "of the same structure) to load its parameters."
        ) from e
    except (TypeError, ValueError) as e:
        described = header.get("model") or {}
        name = described.get("class", header.get("class"))
        raise CheckpointError(
            f"cannot rebuild the model of checkpoint {str(path)!r}: its hyperparameters do not "
            f"fit {name} of this dynrnn (a file of another version?): {e}. Pass `like=` (a "
            "model of the same structure) to load its parameters."
        ) from e


def load(path, *, like=None, extra_like=None, return_metadata: bool = False):
    """Load a model saved with `dr.save`.

    **Arguments:**
    - `path`: the checkpoint file.
    - `like`: a model of the same structure to read the parameters into; by default the
      model is rebuilt from its saved class and hyperparameters.
    - `extra_like`: a pytree of the structure of the saved `extra` to read it too.
    - `return_metadata`: also return the header's metadata (and the extra tree).

    **Returns:** the model, or `(model, metadata)` / `(model, metadata, extra)`.

    **Raises:** `FileNotFoundError`; `CheckpointError` for truncated, corrupt or foreign files.
    """
    return load_parts(path, *read_header(path), like=like, extra_like=extra_like,
                      return_metadata=return_metadata)


def load_parts(path, header: dict, payload: bytes, *, like=None, extra_like=None,
               return_metadata: bool = False):
    """`load` of a file already read and validated by `read_header` (`path` names it in
    errors)."""
    if like is None:
        like = _skeleton(header, path)
    buf = io.BytesIO(payload)
    try:
        model = eqx.tree_deserialise_leaves(buf, like)
        extra = None
        if extra_like is not None:
            if not header.get("has_extra"):
                raise CheckpointError(f"checkpoint {str(path)!r} holds no extra state.")
            extra = eqx.tree_deserialise_leaves(buf, extra_like)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model structure "
            f"({type(like).__name__}): {e}"
        ) from e
    if not return_metadata:
        return model
    if extra_like is not None:
        return model, header["metadata"], extra
    return model, header["metadata"]
