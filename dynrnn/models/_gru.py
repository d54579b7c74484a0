"""A gated recurrent unit as a latent model: the recurrent baseline of dynamical-systems
reconstruction studies (e.g. Vlachas et al., Neural Networks 2020; Hess et al., ICML 2023
compare against it).

Cho et al., "Learning Phrase Representations using RNN Encoder–Decoder for Statistical Machine
Translation", EMNLP 2014, in the form of PyTorch's `nn.GRUCell`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import check_positive
from ._base import AbstractLatentModel, AbstractObservation
from ._observation import make_observation


class GRU(AbstractLatentModel):
    """Gated recurrent unit on a latent state `h` of `latent` units, driven by optional inputs:

        r = σ(W_ir u + b_ir + W_hr h + b_hr)
        z = σ(W_iz u + b_iz + W_hz h + b_hz)
        n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 − z) ⊙ n + z ⊙ h

    (the gate order `r, z, n` and the initialisation `U(±1/√latent)` of every weight and bias
    are PyTorch's `nn.GRUCell`). Each new state is a convex combination of `h` and a `tanh`,
    so from `|h| < 1` the state stays in `(−1, 1)`: the default observation is therefore an
    `Affine` read-out `x̂ = B h` (with full forcing through its pseudo-inverse), whatever the
    sizes.

    **Arguments:**
    - `latent`: number of units H.
    - `obs`: observed dimensions (default H).
    - `inputs`: number of external inputs (default 0: autonomous).
    - `observation`: `None` (affine), a name, a table or an observation model.
    - `key`: PRNG key; `dtype`: floating dtype of the parameters.
    """

    weight_ih: Float[Array, "three_latent input"]
    weight_hh: Float[Array, "three_latent latent"]
    bias_ih: Float[Array, " three_latent"]
    bias_hh: Float[Array, " three_latent"]
    observation: AbstractObservation

    def __init__(self, *, latent: int, obs: int | None = None, inputs: int = 0,
                 observation=None, key: PRNGKeyArray, dtype=None):
        check_positive(latent, "latent", integer=True)
        check_positive(inputs, "inputs", integer=True, strict=False)
        obs = latent if obs is None else obs
        check_positive(obs, "obs", integer=True)
        dtype = dtype or jnp.result_type(float)
        bound = 1.0 / math.sqrt(latent)
        k1, k2, k3, k4, ko = jr.split(key, 5)

        def uniform(k, shape):
            return jr.uniform(k, shape, dtype, -bound, bound)

        self.weight_ih = uniform(k1, (3 * latent, inputs))
        self.weight_hh = uniform(k2, (3 * latent, latent))
        self.bias_ih = uniform(k3, (3 * latent,))
        self.bias_hh = uniform(k4, (3 * latent,))
        observation = "affine" if observation is None else observation
        self.observation = make_observation(observation, obs, latent, key=ko, dtype=dtype)

    @property
    def n_inputs(self) -> int:
        return self.weight_ih.shape[1]

    def step(self, z, u=None, *, key=None):
        self._check_step(z, u)
        gi = self.bias_ih
        if u is not None:
            gi = gi + self.weight_ih @ u
        gh = self.weight_hh @ z + self.bias_hh
        i_r, i_z, i_n = jnp.split(gi, 3)
        h_r, h_z, h_n = jnp.split(gh, 3)
        r = jax.nn.sigmoid(i_r + h_r)
        update = jax.nn.sigmoid(i_z + h_z)
        n = jnp.tanh(i_n + r * h_n)
        return (1.0 - update) * n + update * z
