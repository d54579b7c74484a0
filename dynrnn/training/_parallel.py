"""Data parallelism over a device mesh: per-device gradients, one averaged buffer."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from .._errors import DynrnnValueError


def pmean_flat(tree: PyTree, axis_name: str) -> PyTree:
    """`jax.lax.pmean(tree, axis_name)` as one collective per dtype instead of one per leaf.

    Inside `jax.shard_map`, the leaves of each floating dtype are concatenated into one
    vector, averaged across the devices of `axis_name`, and split back into the tree's
    shapes. On CPU devices every collective is a rendezvous of the device threads, and a
    model's gradient has tens of leaves: averaging them one by one cost ~1 ms per update for
    a dense CfC's batched gradient on 2 CPU devices (8.2 -> 7.3 ms) and more where the
    gradient has more leaves (CfC GTF update in `dr.fit`: 16.2 -> 7.4 ms; see
    `benchmarks/RESULTS.md`). Non-floating leaves are averaged on their own, as `pmean`
    would.
    """
    leaves, treedef = jax.tree.flatten(tree)
    out: list = [None] * len(leaves)
    groups: dict = {}
    for i, leaf in enumerate(leaves):
        leaf = jnp.asarray(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            groups.setdefault(leaf.dtype, []).append(i)
        else:
            out[i] = jax.lax.pmean(leaf, axis_name)
    for idx in groups.values():
        flat = jnp.concatenate([jnp.ravel(leaves[i]) for i in idx])
        flat = jax.lax.pmean(flat, axis_name)
        start = 0
        for i in idx:
            size = jnp.size(leaves[i])
            out[i] = flat[start:start + size].reshape(jnp.shape(leaves[i]))
            start += size
    return jax.tree.unflatten(treedef, out)


def data_parallel(
    value_and_grad: Callable, mesh: jax.sharding.Mesh, *, n_sharded: int = 1,
    axis_name: str = "batch",
) -> Callable:
    """Data-parallel version of `value_and_grad(params, *args)`.

    The first `n_sharded` of `args` are split along their leading (batch) axis over the
    mesh axis `axis_name` (`jax.shard_map`); the parameters and the other args are
    replicated. Each device computes the value and gradient of its slice and the results are
    averaged across devices in one buffer (`pmean_flat`), so for a loss that is a mean over
    the batch the result equals the single-device one. Use it inside `jax.jit`, followed by
    the optimiser update, which every device then applies identically to its replica.

    Explicit per-device gradients avoid what automatic partitioning does with a scan over
    time whose weights are shared: a cross-device reduction of the weight gradient at every
    time step (measured: CfC with GTF, 2 CPU devices, 94.5 ms per update instead of 10.6 ms
    on one). `dr.fit(..., mesh=...)` uses this in both its modes.
    """
    from jax.sharding import PartitionSpec

    if axis_name not in mesh.axis_names:
        raise DynrnnValueError(
            f"`mesh` must have an axis named {axis_name!r}, got axes {mesh.axis_names}."
        )
    if n_sharded < 0:
        raise DynrnnValueError(f"`n_sharded` must be >= 0, got {n_sharded}.")

    def local(p, *args):
        return pmean_flat(value_and_grad(p, *args), axis_name)

    def call(p, *args):
        if n_sharded > len(args):
            raise DynrnnValueError(
                f"`n_sharded`={n_sharded} but only {len(args)} arguments follow the parameters."
            )
        n_dev = mesh.shape[axis_name]
        for i, a in enumerate(args[:n_sharded]):
            for leaf in jax.tree.leaves(a):
                if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] % n_dev:
                    raise DynrnnValueError(
                        f"sharded argument {i} has a leaf of shape {jnp.shape(leaf)}; its "
                        f"leading (batch) axis must be divisible by the {n_dev} devices of "
                        f"the mesh axis {axis_name!r}."
                    )
        specs = (PartitionSpec(),) + tuple(
            PartitionSpec(axis_name) if i < n_sharded else PartitionSpec()
            for i in range(len(args)))
        return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(),
                             check_vma=False)(p, *args)

    return call
