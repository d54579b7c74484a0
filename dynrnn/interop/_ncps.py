"""Import trained `ncps` (PyTorch) liquid networks as dynrnn models.

Nothing here imports `torch` or `ncps`: modules are read through their `state_dict()` and
attributes, and state dicts may hold torch tensors or NumPy arrays.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._errors import DynrnnTypeError, DynrnnValueError
from ..models import LTC, CfC
from ..models.wirings import AbstractWiring, Wiring


_ACTIVATION_CLASSES = {
    "LeCun": "lecun_tanh",
    "Tanh": "tanh",
    "ReLU": "relu",
    "SiLU": "silu",
    "GELU": "gelu",
}


def _torch():
    """PyTorch if it is installed (the cross-check is optional), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _numpy(t) -> np.ndarray:
    torch = _torch()
    if torch is not None and isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def wiring_from_ncps(wiring) -> Wiring:
    """A dynrnn `Wiring` with the adjacency and layers of a built `ncps.wirings.Wiring`.

    **Raises:** `ValueError` if the ncps wiring has not been built (no input size yet).
    """
    if isinstance(wiring, Wiring):
        return wiring
    try:
        import ncps
    except ImportError:
        ncps = None
    if ncps is None or not isinstance(wiring, ncps.wirings.Wiring):
        raise DynrnnTypeError(
            f"`wiring` must be an ncps or dynrnn wiring, got {type(wiring).__name__}."
        )
    if wiring.sensory_adjacency_matrix is None:
        raise DynrnnValueError(
            "the ncps wiring is not built yet; call `wiring.build(input_size)` first."
        )
    layers = tuple(tuple(wiring.get_neurons_of_layer(k)) for k in range(wiring.num_layers))
    return Wiring(
        np.asarray(wiring.adjacency_matrix),
        np.asarray(wiring.sensory_adjacency_matrix),
        int(wiring.output_dim),
        layers,
    )


def _as_wiring(wiring, input_size):
    if wiring is None:
        return None
    if isinstance(wiring, AbstractWiring):
        return wiring.build(input_size)
    return wiring_from_ncps(wiring)


def from_ncps(
    module_or_state_dict,
    *,
    kind: str | None = None,
    input_size: int | None = None,
    units: int | None = None,
    wiring=None,
    mode: str | None = None,
    proj_size: int | None = None,
    backbone_activation: str | None = None,
    backbone_dropout: float | None = None,
    mixed_memory: bool | None = None,
    input_mapping: str | None = "affine",
    output_mapping: str | None = "affine",
    ode_unfolds: int = 6,
    epsilon: float = 1e-8,
    implicit_param_constraints: bool = True,
    dtype=None,
):
    """Turn an ncps `CfC` or `LTC` (PyTorch module, or its state dict) into a dynrnn model.

    Given a module (`ncps.torch.CfC` or `ncps.torch.LTC`), every setting is read from it and
    the keyword arguments are ignored. Given a state dict (`module.state_dict()`, tensors or
    arrays), the sizes, mixed memory, projection, backbone depth and width and the pure mode
    are read from its keys and shapes; the rest comes from the keyword arguments, with ncps's
    defaults: `kind` (`"cfc"` or `"ltc"`, required), `mode` (`"default"`; `"no_gate"` cannot
    be told from the weights), `backbone_activation` (`"lecun_tanh"`), `wiring` (required for a
    wired CfC; for an LTC it defaults to the state dict's masks), and the LTC settings
    `input_mapping`, `output_mapping`, `ode_unfolds`, `epsilon`, `implicit_param_constraints`.

    The imported model computes what the ncps module computes (same outputs for the same
    inputs and time spans; batched time spans of shape (batch, time) are handled per sample,
    see `model.batch`). A wired CfC's flat state is in the wiring's neuron order (motor
    first) where ncps concatenates layers (inter first).

    **Returns:** a `dr.models.CfC` or `dr.models.LTC`.

    **Raises:** `ValueError` if the state dict does not fit the given settings.
    """
    torch = _torch()
    if torch is not None and isinstance(module_or_state_dict, torch.nn.Module):
        return _from_module(module_or_state_dict, dtype)
    if not isinstance(module_or_state_dict, Mapping):
        raise DynrnnTypeError(
            "`module_or_state_dict` must be an ncps CfC/LTC module or its state dict, got "
            f"{type(module_or_state_dict).__name__}."
        )
    sd = {k: _numpy(v) for k, v in module_or_state_dict.items()}
    if kind not in ("cfc", "ltc"):
        raise DynrnnValueError(f"`kind` must be 'cfc' or 'ltc' for a state dict, got {kind!r}.")
    if kind == "ltc":
        return _ltc_from_state_dict(
            sd, wiring=wiring, input_size=input_size, mixed_memory=mixed_memory,
            input_mapping=input_mapping, output_mapping=output_mapping, ode_unfolds=ode_unfolds,
            epsilon=epsilon, implicit_param_constraints=implicit_param_constraints, dtype=dtype,
        )
    return _cfc_from_state_dict(
        sd, wiring=wiring, input_size=input_size, units=units, mode=mode, proj_size=proj_size,
        backbone_activation=backbone_activation, backbone_dropout=backbone_dropout,
        mixed_memory=mixed_memory, dtype=dtype,
    )


def _from_module(module, dtype):
    name = type(module).__name__
    sd = {k: _numpy(v) for k, v in module.state_dict().items()}
    if name == "LTC":
        cell = module.rnn_cell
        return _ltc_from_state_dict(
            sd,
            wiring=wiring_from_ncps(cell._wiring),
            input_size=int(module.input_size),
            mixed_memory=bool(module.use_mixed),
            input_mapping=cell._input_mapping if cell._input_mapping in ("affine", "linear")
            else None,
            output_mapping=cell._output_mapping if cell._output_mapping in ("affine", "linear")
            else None,
            ode_unfolds=int(cell._ode_unfolds),
            epsilon=float(cell._epsilon),
            implicit_param_constraints=bool(cell._implicit_param_constraints),
            dtype=dtype,
        )
    if name == "CfC":
        from ncps.torch import WiredCfCCell

        wired = isinstance(module.rnn_cell, WiredCfCCell)
        if wired:
            cells = list(module.rnn_cell._layers)
            wiring = wiring_from_ncps(module.rnn_cell._wiring)
            activation, dropout = None, None
        else:
            cells = [module.rnn_cell]
            wiring = None
            activation, dropout = "lecun_tanh", 0.0
            if module.rnn_cell.backbone is not None:
                for layer in module.rnn_cell.backbone:
                    cls = type(layer).__name__
                    if cls in _ACTIVATION_CLASSES:
                        activation = _ACTIVATION_CLASSES[cls]
                    elif cls == "Dropout":
                        dropout = float(layer.p)
                    elif cls != "Linear":
                        raise DynrnnValueError(f"unsupported backbone layer {cls} in ncps CfC.")
        return _cfc_from_state_dict(
            sd,
            wiring=wiring,
            input_size=int(module.input_size),
            units=None,
            mode=cells[0].mode,
            proj_size=module.proj_size,
            backbone_activation=activation,
            backbone_dropout=dropout,
            mixed_memory=bool(module.use_mixed),
            dtype=dtype,
        )
    raise DynrnnTypeError(
        f"from_ncps converts ncps.torch.CfC and ncps.torch.LTC modules, got {name}."
    )


def _take(sd, key, shape=None):
    if key not in sd:
        raise DynrnnValueError(f"the state dict has no entry {key!r}; it does not fit the model.")
    a = sd[key]
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise DynrnnValueError(
            f"state dict entry {key!r} has shape {tuple(a.shape)}, the model needs "
            f"{tuple(shape)}; check the sizes and the wiring."
        )
    return a


def _set(model, pairs, dtype):
    """Replace the leaves `where(model)` by the arrays, cast to `dtype`, checking shapes."""
    wheres, values = zip(*pairs)
    old = [w(model) for w in wheres]
    new = []
    for o, v, w in zip(old, values, wheres):
        v = np.asarray(v).reshape(-1) if o.ndim == 1 and np.ndim(v) == 2 else np.asarray(v)
        if tuple(v.shape) != tuple(o.shape):
            raise DynrnnValueError(
                f"parameter shape mismatch: state dict gives {tuple(v.shape)}, the model has "
                f"{tuple(o.shape)}."
            )
        new.append(jnp.asarray(v, dtype))
    return eqx.tree_at(lambda m: tuple(w(m) for w in wheres), model, tuple(new))


def _lstm_pairs(sd, prefix, inverse=None):
    """The LSTM's weights; `inverse[i]` is the ncps state position of our state unit `i`
    (a wired CfC orders its state by neuron id, ncps by layer)."""
    w_in = _take(sd, f"{prefix}input_map.weight")
    b_in = _take(sd, f"{prefix}input_map.bias")
    w_rec = _take(sd, f"{prefix}recurrent_map.weight")
    if inverse is not None:
        n = len(inverse)
        rows = np.concatenate([g * n + inverse for g in range(4)])
        w_in, b_in, w_rec = w_in[rows], b_in[rows], w_rec[rows][:, inverse]
    return [
        (lambda m: m.lstm.input_weight, w_in),
        (lambda m: m.lstm.input_bias, b_in),
        (lambda m: m.lstm.recurrent_weight, w_rec),
    ]


def _ltc_from_state_dict(sd, *, wiring, input_size, mixed_memory, input_mapping, output_mapping,
                         ode_unfolds, epsilon, implicit_param_constraints, dtype):
    p = "rnn_cell."
    mask = _take(sd, p + "sparsity_mask")
    smask = _take(sd, p + "sensory_sparsity_mask")
    n_in = smask.shape[0]
    if input_size is not None and input_size != n_in:
        raise DynrnnValueError(f"`input_size`={input_size} but the state dict has {n_in} inputs.")
    wiring = _as_wiring(wiring, n_in)
    if wiring is None:
        out = _take(sd, p + "output_w").shape[0] if p + "output_w" in sd else mask.shape[0]
        wiring = Wiring.from_adjacency(mask, smask, out)
    if not (np.array_equal(np.abs(wiring.adjacency), mask)
            and np.array_equal(np.abs(wiring.sensory_adjacency), smask)):
        raise DynrnnValueError("the wiring's synapses differ from the state dict's sparsity masks.")
    if mixed_memory is None:
        mixed_memory = any(k.startswith("lstm.") for k in sd)
    dtype = dtype or jnp.result_type(float)
    model = LTC(
        n_in, wiring, ode_unfolds=ode_unfolds, epsilon=epsilon,
        implicit_param_constraints=implicit_param_constraints, mixed_memory=mixed_memory,
        input_mapping=input_mapping, output_mapping=output_mapping, dtype=dtype,
        key=jr.PRNGKey(0),
    )
    names = ["gleak", "vleak", "cm", "sigma", "mu", "w", "erev", "sensory_sigma", "sensory_mu",
             "sensory_w", "sensory_erev"]
    pairs = [((lambda m, n=n: getattr(m, n)), _take(sd, p + n)) for n in names]
    if input_mapping is not None:
        pairs.append((lambda m: m.input_w, _take(sd, p + "input_w")))
    if input_mapping == "affine":
        pairs.append((lambda m: m.input_b, _take(sd, p + "input_b")))
    if output_mapping is not None:
        pairs.append((lambda m: m.observation.scale, _take(sd, p + "output_w")))
    if output_mapping == "affine":
        pairs.append((lambda m: m.observation.bias, _take(sd, p + "output_b")))
    if mixed_memory:
        pairs += _lstm_pairs(sd, "lstm.")
    return _set(model, pairs, dtype)


def _cell_pairs(sd, prefix, index, mode):
    def cell(m):
        return m.cells[index]

    linear_keys = sorted(
        {int(g.group(1)) for k in sd if (g := re.fullmatch(re.escape(prefix) + r"backbone\.(\d+)"
                                                            r"\.weight", k))}
    )
    pairs = []
    for j, idx in enumerate(linear_keys):
        pairs.append((lambda m, j=j: cell(m).backbone[j][0], sd[f"{prefix}backbone.{idx}.weight"]))
        pairs.append((lambda m, j=j: cell(m).backbone[j][1], sd[f"{prefix}backbone.{idx}.bias"]))
    heads = ["ff1"] if mode == "pure" else ["ff1", "ff2", "time_a", "time_b"]
    for h in heads:
        pairs.append((lambda m, h=h: getattr(cell(m), h)[0], _take(sd, f"{prefix}{h}.weight")))
        pairs.append((lambda m, h=h: getattr(cell(m), h)[1], _take(sd, f"{prefix}{h}.bias")))
    if mode == "pure":
        pairs.append((lambda m: cell(m).A, _take(sd, f"{prefix}A")))
        pairs.append((lambda m: cell(m).w_tau, _take(sd, f"{prefix}w_tau")))
    return pairs


def _cfc_from_state_dict(sd, *, wiring, input_size, units, mode, proj_size, backbone_activation,
                         backbone_dropout, mixed_memory, dtype):
    wired = any(k.startswith("rnn_cell.layer_0.") for k in sd)
    first = "rnn_cell.layer_0." if wired else "rnn_cell."
    pure = first + "w_tau" in sd
    if mode is None:
        mode = "pure" if pure else "default"
    if (mode == "pure") != pure:
        raise DynrnnValueError(
            f"`mode`={mode!r} does not match the state dict (which is "
            f"{'' if pure else 'not '}a pure-mode CfC)."
        )
    if mixed_memory is None:
        mixed_memory = any(k.startswith("lstm.") for k in sd)
    if proj_size is None and "fc.weight" in sd:
        proj_size = sd["fc.weight"].shape[0]
    dtype = dtype or jnp.result_type(float)
    if wired:
        if wiring is None:
            raise DynrnnValueError(
                "a wired CfC state dict needs its `wiring` (the ncps or dynrnn wiring it was "
                "built with)."
            )
        ff1 = _take(sd, "rnn_cell.layer_0.ff1.weight")
        n_in = ff1.shape[1] - ff1.shape[0]
        wiring = _as_wiring(wiring, n_in)
        model = CfC(n_in, wiring, proj_size, mode=mode, mixed_memory=mixed_memory, dtype=dtype,
                    key=jr.PRNGKey(0))
        for k, mask in enumerate(wiring.layer_input_masks()):
            theirs = _take(sd, f"rnn_cell.layer_{k}.sparsity_mask")
            if not np.array_equal(theirs, mask):
                raise DynrnnValueError(
                    f"the wiring's layer {k} synapses differ from the state dict's mask."
                )
        pairs = []
        for k in range(wiring.num_layers):
            pairs += _cell_pairs(sd, f"rnn_cell.layer_{k}.", k, mode)
    else:
        ff1 = _take(sd, "rnn_cell.ff1.weight")
        hidden = ff1.shape[0]
        if units is not None and units != hidden:
            raise DynrnnValueError(f"`units`={units} but the state dict has {hidden} units.")
        linear_keys = sorted(
            int(g.group(1)) for k in sd
            if (g := re.fullmatch(r"rnn_cell\.backbone\.(\d+)\.weight", k))
        )
        if linear_keys:
            first_w = sd[f"rnn_cell.backbone.{linear_keys[0]}.weight"]
            n_in = first_w.shape[1] - hidden
            backbone_units = first_w.shape[0]
        else:
            n_in = ff1.shape[1] - hidden
            backbone_units = 128
        if input_size is not None and input_size != n_in:
            raise DynrnnValueError(
                f"`input_size`={input_size} but the state dict has {n_in} inputs."
            )
        model = CfC(
            n_in, hidden, proj_size, mode=mode, backbone_units=backbone_units,
            backbone_layers=len(linear_keys),
            backbone_dropout=0.0 if backbone_dropout is None else backbone_dropout,
            backbone_activation=backbone_activation or "lecun_tanh",
            mixed_memory=mixed_memory, dtype=dtype, key=jr.PRNGKey(0),
        )
        pairs = _cell_pairs(sd, "rnn_cell.", 0, mode)
    if proj_size is not None:
        pairs.append((lambda m: m.observation.weight, _take(sd, "fc.weight")))
        pairs.append((lambda m: m.observation.bias, _take(sd, "fc.bias")))
    if mixed_memory:
        inverse = None
        if wired:
            inverse = np.argsort(np.concatenate([np.asarray(layer) for layer in wiring.layers]))
        pairs += _lstm_pairs(sd, "lstm.", inverse)
    return _set(model, pairs, dtype)
