"""`dr.save` / `dr.load`: Equinox leaf serialisation plus hyperparameters as JSON, no pickle.

File layout (one file, written atomically through a temporary file and `os.replace`):

    b"DYNRNN\\x01\\n"             8-byte magic
    uint64 little-endian         length of the JSON header
    JSON header                  class, hyperparameters, user metadata, number of trees
    uint64 little-endian         length of the payload
    payload                      `eqx.tree_serialise_leaves` of the model, then extra trees
    32 bytes                     SHA-256 of header + payload

A truncated or corrupt file fails the length or checksum test and raises `CheckpointError`.
Models are rebuilt from their class (which must live in `dynrnn`) and hyperparameters, then the
leaves are read into that skeleton (`numpy.load` with `allow_pickle=False`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import os
import pathlib
import struct
import tempfile

import equinox as eqx
import jax.random as jr
import numpy as np

from .._errors import CheckpointError, DynrnnTypeError


MAGIC = b"DYNRNN\x01\n"


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


def hyperparameters_of(model) -> dict | None:
    """The constructor arguments that rebuild `model`'s skeleton, or `None` if unknown.

    Uses `model.hyperparameters` when the class defines it; otherwise matches the names of
    `__init__`'s parameters to attributes of the model.
    """
    hp = getattr(model, "hyperparameters", None)
    if isinstance(hp, dict):
        return _json_safe(hp)
    try:
        sig = inspect.signature(type(model).__init__)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return None
    out = {}
    for name, p in sig.parameters.items():
        if name in ("self", "key") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if hasattr(model, name):
            v = getattr(model, name)
            if isinstance(v, bool | int | float | str | type(None)) or (
                isinstance(v, list | tuple)
                and all(isinstance(i, bool | int | float | str) for i in v)
            ):
                out[name] = _json_safe(v)
                continue
        if p.default is inspect.Parameter.empty:
            return None
    return out


def _class_path(model) -> str:
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve_class(path: str):
    module, _, qualname = path.partition(":")
    if not (module == "dynrnn" or module.startswith("dynrnn.")):
        raise CheckpointError(
            f"checkpoint names class {path!r} outside dynrnn; refusing to import it. "
            "Pass `like=` (a model of the right structure) to load its parameters."
        )
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never a mix."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def save(path, model, *, extra=None, hyperparameters=None, **metadata) -> pathlib.Path:
    """Save `model` (and optionally `extra` pytrees such as an optimiser state) atomically.

    **Arguments:**
    - `path`: destination file (conventionally `.eqx`).
    - `model`: an Equinox module.
    - `extra`: optional pytree saved after the model (read back with `load(..., extra_like=)`).
    - `hyperparameters`: constructor arguments; default `model.hyperparameters` or inferred.
    - `**metadata`: JSON-serialisable information stored in the header (config, step, ...).

    **Returns:** the path written.
    """
    if not isinstance(model, eqx.Module):
        raise DynrnnTypeError(f"`model` must be an Equinox module, got {type(model).__name__}.")
    hp = hyperparameters if hyperparameters is not None else hyperparameters_of(model)
    header = {
        "format": "dynrnn-checkpoint",
        "version": 1,
        "class": _class_path(model),
        "hyperparameters": _json_safe(hp),
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


def read_header(path) -> tuple[dict, bytes]:
    """Validate a checkpoint file and return `(header, payload)`."""
    path = pathlib.Path(path)
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
    header, payload = read_header(path)
    if like is None:
        hp = header.get("hyperparameters")
        if hp is None:
            raise CheckpointError(
                f"checkpoint {str(path)!r} stores no hyperparameters for {header['class']}; "
                "pass `like=` (a model of the same structure)."
            )
        cls = _resolve_class(header["class"])
        try:
            like = cls(**hp, key=jr.PRNGKey(0))
        except TypeError:
            like = cls(**hp)
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
