"""End-to-end calcium fit against the two-stage pipeline (deconvolve, then fit), on simulated
calcium imaging with a known latent system.

Simulation (per seed): a standardised Lorenz-63 trajectory `z(t)` (`dr.systems.simulate`,
`--dt` time units per frame) drives `--neurons` neurons with rates
`λ_i(t) = exp(b_i + w_i·z(t))` spikes per frame (`w_i ~ N(0, 0.6² I)`, `exp(b_i) ~ U(0.1, 0.4)` times `--rate-scale`);
spikes are Poisson counts; calcium follows the AR(1) kernel `γ = gamma_from_tau(--tau, 1)`
(`--tau` frames); fluorescence `F = α_i c + β_i + σ ε` (`α_i ~ U(0.7, 1.3)`, `β_i ~ U(1, 2)`,
`σ = --noise`). The first `--train` frames train, the next `--test` frames test.

Both methods fit the same family and sizes (`ShallowPLRNN`, `--latent`, `--hidden`) with the
same update budget (`--steps` updates of `--batch` windows of `--seq-len` frames, the main
job's recipe: adaptive GTF with decay 0.99, RAdam at `--lr` with the default decay), the same
kernel (the true γ, as `gamma_from_tau` would give it) and the same spike inference
(`dr.calcium.deconvolve`, smoothed with a Gaussian of `--smooth`
frames); both read-outs start at the principal axes of their data:

- **latent-path** (default): `CalciumObservation` + `dr.training.CalciumReconstruction(
  dr.GTF(--path-alpha), latent_path=True, process_noise=--process-noise)`: the latent path of
  the training frames is inferred jointly with the dynamics (the fluorescence likelihood plus
  Gaussian process noise along the path), windows of `--path-seq-len` frames, the objective's
  own optimiser (the path has its own Adam); the test frames' path by the same loss with the
  model fixed (`infer_states`);
- **end-to-end**: `CalciumObservation` + `dr.training.CalciumReconstruction` (fluorescence
  likelihood; `--spike-weight` adds the Poisson term on the deconvolved spikes;
  `--learn-kernel` trains the kernel from a start 30 % off the truth);
- **two-stage**: the smoothed deconvolved spikes, z-scored per neuron, fitted by teacher-forced
  reconstruction (`dr.fit` default, `Affine` read-out).
- **warm-start** (`--methods warm-start`): two-stage for `--warm-fraction` of the budget, then
  end-to-end from that solution for the rest (the dynamics carried over, the calcium read-out
  fitted to the states the two-stage dynamics followed: `CalciumReconstruction.initialise(...,
  states=...)`); the same total number of updates.

Scores on the test frames: latent states are inferred with the GTF blend at α = 0.5
(`CalciumReconstruction.infer_states`; `dr.forcing.infer_states` on the two-stage data); an
affine map from model states to the true latent is fitted by least squares on the training
frames; the model then runs free from its first test state for the test length, and
`D_stsp` (bins, 30 per dimension) compares the mapped free run with the true test latent; a
free run with under half its points inside the metric's box over the true latent (or any
non-finite point) counts as ∞ (D_stsp ignores points outside the box, so a run that leaves
at once would otherwise score as a single point, ≈ 5.1, better than most fits).
The D_stsp of the mapped inferred test states (no free run) is printed as well: it shows how
much of the figure is the alignment (an affine least-squares map shrinks noisy states towards
the mean). Rate r: Pearson r between the model's rates at the inferred test states and the
true rates, mean over neurons (for the two-stage model its read-out, whose units do not matter
to r).
Reference rows: the deconvolved, smoothed spikes themselves (rate r without a model), and
D_stsp of the true training latent against the true test latent (the floor of the measure).

Usage: `python benchmarks/calcium_end_to_end.py [--seeds 0 1 2] [--steps 3000]`. Prints
Markdown tables; benchmarks never assert.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.ndimage

import dynrnn as dr


def simulate(seed: int, args):
    """`(F, latent, rates, gamma)` of one simulated recording (module docstring)."""
    rng = np.random.default_rng(seed)
    n = args.train + args.test
    y0 = np.array([1.0, 1.0, 20.0]) + rng.standard_normal(3)
    ds = dr.systems.simulate(dr.systems.Lorenz63(), n_steps=n, dt=args.dt, transient=50.0,
                             y0=jnp.asarray(y0), standardize=True)
    z = np.asarray(ds.state.values, np.float64)
    N = args.neurons
    w = 0.6 * rng.standard_normal((N, 3))
    b = np.log(args.rate_scale * rng.uniform(0.1, 0.4, N))
    rates = np.exp(b + z @ w.T)
    spikes = rng.poisson(rates).astype(np.float64)
    gamma = dr.calcium.gamma_from_tau(args.tau, 1.0)
    c = np.asarray(dr.calcium.calcium_filter(jnp.asarray(spikes), jnp.asarray([gamma] * N)))
    alpha, beta = rng.uniform(0.7, 1.3, N), rng.uniform(1.0, 2.0, N)
    F = alpha * c + beta + args.noise * rng.standard_normal(c.shape)
    return F, z, rates, gamma


def pca_columns(x, k):
    """`(obs, k)` principal axes of `x` scaled by the components' sd (pinv gives z-scores)."""
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    return vt[:k].T * (s[:k] / np.sqrt(x.shape[0]))


def affine_map(states, target):
    X = np.c_[states, np.ones(len(states))]
    coef, *_ = np.linalg.lstsq(X, target, rcond=None)
    return lambda s: np.c_[s, np.ones(len(s))] @ coef


def free_run(model, z0, n):
    return np.asarray(model.rollout(jnp.asarray(z0), n))


def rate_r(pred, true):
    return float(np.nanmean([np.corrcoef(pred[:, i], true[:, i])[0, 1]
                             for i in range(true.shape[1])]))


def d_stsp(true, gen):
    return float(dr.metrics.state_space_divergence(jnp.asarray(true), jnp.asarray(gen)))


def scores(states_train, states_test, model, z_train, z_test, rates_pred, rates_true):
    to_latent = affine_map(states_train, z_train)
    run = free_run(model, states_test[0], len(z_test) - 1)
    gen = to_latent(np.r_[states_test[:1], run])
    inside = in_box(z_test, gen)
    d = d_stsp(z_test, gen) if np.all(np.isfinite(gen)) and inside >= 0.5 else np.nan
    # NaN: the free run left the true data's box (D_stsp ignores points outside it, so a run
    # that leaves after one step scores as one point, ≈ 5.1 here, better than most fits): the
    # worst outcome, ranked as such by the median.
    inferred = d_stsp(z_test, to_latent(states_test))
    return (np.inf if np.isnan(d) else d), rate_r(rates_pred, rates_true), inferred, inside


def in_box(true, gen):
    """Share of the free run inside D_stsp's box over the true data (min/max ± 0.1 sd)."""
    sd = true.std(0)
    lo, hi = true.min(0) - 0.1 * sd, true.max(0) + 0.1 * sd
    with np.errstate(invalid="ignore"):
        return float(np.mean(np.all((gen >= lo) & (gen <= hi), axis=1)))


_GTF = ["adaptive"]


def teacher_forcing():
    """`--gtf`: the main job's scheme (`dynrnn reconstruct`, adaptive GTF with decay
    γ = 0.99) or a constant forcing strength."""
    a = _GTF[0]
    return dr.GTF("adaptive", gamma=0.99) if a == "adaptive" else dr.GTF(float(a))


def end_to_end(F_tr, F_te, gamma, key, args):
    k1, k2, k3 = jr.split(key, 3)
    g0 = gamma if not args.learn_kernel else dr.calcium.gamma_from_tau(1.3 * args.tau, 1.0)
    obs = dr.models.CalciumObservation(args.neurons, args.latent, gamma=g0, key=k1,
                                       learn_kernel=args.learn_kernel, encoder=args.encoder)
    model = dr.models.ShallowPLRNN(obs=args.neurons, latent=args.latent, hidden=args.hidden,
                                   observation=obs, key=k2)
    objective = dr.training.CalciumReconstruction(
        teacher_forcing(), seq_len=args.seq_len, smooth=args.smooth,
        spike_weight=args.spike_weight, force_calcium=not args.free_calcium)
    model = objective.initialise(model, F_tr)
    t0 = time.perf_counter()
    res = dr.fit(model, F_tr, loss=objective, n_steps=args.steps, batch_size=args.batch,
                 optimizer=dr.training.default_optimizer(args.steps, args.lr), key=k3,
                 progress=False)
    wall = time.perf_counter() - t0
    extra = {"tau": float(-1.0 / np.log(res.model.observation.gamma[:, 0]).mean())} \
        if args.learn_kernel else {}
    return (*_inferred(objective, res.model, F_tr, F_te), wall, extra)


def latent_path(F_tr, F_te, gamma, key, args):
    """End to end with a latent path (`CalciumReconstruction(latent_path=True)`): the path of
    the training frames inferred jointly with the dynamics under constant GTF `--path-alpha`;
    the test frames' path by the same loss with the model fixed."""
    k1, k2, k3 = jr.split(key, 3)
    obs = dr.models.CalciumObservation(args.neurons, args.latent, gamma=gamma, key=k1)
    model = dr.models.ShallowPLRNN(obs=args.neurons, latent=args.latent, hidden=args.hidden,
                                   observation=obs, key=k2)
    objective = dr.training.CalciumReconstruction(
        dr.GTF(args.path_alpha), seq_len=args.path_seq_len, smooth=args.smooth,
        spike_weight=args.spike_weight, latent_path=True, process_noise=args.process_noise)
    model = objective.initialise(model, F_tr)
    t0 = time.perf_counter()
    res = dr.fit(model, F_tr, loss=objective, n_steps=args.steps, batch_size=args.batch,
                 optimizer=objective.default_optimizer(args.steps, args.lr), key=k3,
                 progress=False)
    m = res.model
    s_tr = np.asarray(m.observation.states)
    s_te = objective.infer_states(m, F_te)
    wall = time.perf_counter() - t0
    return m, s_tr, s_te, np.asarray(m.observation.rates(jnp.asarray(s_te))), wall, {}


def _inferred(objective, m, F_tr, F_te):
    """`(model, train states, test states, test rates)` of a calcium fit (GTF blend α 0.5)."""
    s_tr = objective.infer_states(m, F_tr, alpha=0.5)
    s_te = objective.infer_states(m, F_te, alpha=0.5)
    return m, s_tr, s_te, np.asarray(m.observation.rates(jnp.asarray(s_te)))


def deconvolved_rates(F, gamma, smooth):
    s = np.stack([dr.calcium.deconvolve(F[:, i], gamma)[0] for i in range(F.shape[1])], 1)
    return scipy.ndimage.gaussian_filter1d(s, smooth, axis=0, mode="nearest") if smooth else s


def two_stage(F_tr, F_te, gamma, key, args):
    k1, k2 = jr.split(key)
    t0 = time.perf_counter()
    r_tr = deconvolved_rates(F_tr, gamma, args.smooth)
    mu, sd = r_tr.mean(0), r_tr.std(0) + 1e-12
    x_tr = (r_tr - mu) / sd
    model = dr.models.ShallowPLRNN(obs=args.neurons, latent=args.latent, hidden=args.hidden,
                                   observation="affine", key=k1)
    B = pca_columns(x_tr, args.latent).astype(np.float32)
    model = eqx.tree_at(lambda m: m.observation.B, model, jnp.asarray(B))
    res = dr.fit(model, x_tr.astype(np.float32), n_steps=args.steps, batch_size=args.batch,
                 seq_len=args.seq_len, teacher_forcing=teacher_forcing(),
                 optimizer=dr.training.default_optimizer(args.steps, args.lr), key=k2,
                 progress=False)
    wall = time.perf_counter() - t0
    m = res.model
    x_te = (deconvolved_rates(F_te, gamma, args.smooth) - mu) / sd
    s_tr = np.asarray(dr.forcing.infer_states(m, x_tr, alpha=0.5))
    s_te = np.asarray(dr.forcing.infer_states(m, x_te, alpha=0.5))
    rates = np.asarray(jax.vmap(m.observe)(jnp.asarray(s_te, jnp.float32)))
    return m, s_tr, s_te, rates, wall, {}


def warm_start(F_tr, F_te, gamma, key, args):
    """Two-stage for `--warm-fraction` of the budget, then end-to-end from its solution: the
    dynamics carried over under a `CalciumObservation` whose `W, b` are fitted to the states
    the two-stage dynamics followed (`initialise(..., states=...)`), the rest of the budget on
    the fluorescence likelihood."""
    k1, k2, k3 = jr.split(key, 3)
    n1 = int(round(args.warm_fraction * args.steps))
    t0 = time.perf_counter()
    sub = argparse.Namespace(**{**vars(args), "steps": n1})
    first, *_ = two_stage(F_tr, F_te, gamma, k1, sub)
    r_tr = deconvolved_rates(F_tr, gamma, args.smooth)
    x_tr = ((r_tr - r_tr.mean(0)) / (r_tr.std(0) + 1e-12)).astype(np.float32)
    followed = np.asarray(dr.forcing.infer_states(first, x_tr, alpha=1.0))
    obs = dr.models.CalciumObservation(args.neurons, args.latent, gamma=gamma, key=k2)
    objective = dr.training.CalciumReconstruction(
        teacher_forcing(), seq_len=args.seq_len, smooth=args.smooth,
        spike_weight=args.spike_weight, force_calcium=not args.free_calcium)
    model = objective.initialise(eqx.tree_at(lambda m: m.observation, first, obs), F_tr,
                                 states=followed)
    n2 = args.steps - n1
    res = dr.fit(model, F_tr, loss=objective, n_steps=n2, batch_size=args.batch,
                 optimizer=dr.training.default_optimizer(n2, args.lr), key=k3,
                 progress=False)
    wall = time.perf_counter() - t0
    return (*_inferred(objective, res.model, F_tr, F_te), wall, {})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--neurons", type=int, default=40)
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--test", type=int, default=5000)
    p.add_argument("--dt", type=float, default=0.02)
    p.add_argument("--tau", type=float, default=8.0, help="calcium decay, frames")
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--rate-scale", type=float, default=1.0,
                   help="factor on the baseline rates (0.1-0.4 spikes per frame at z = 0)")
    p.add_argument("--latent", type=int, default=3)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--smooth", type=float, default=1.0)
    p.add_argument("--gtf", default="adaptive",
                   help="GTF forcing strength: 'adaptive' (the main job's) or a constant")
    p.add_argument("--spike-weight", type=float, default=0.0)
    p.add_argument("--free-calcium", action="store_true",
                   help="end-to-end without forcing the calcium (force_calcium=False)")
    p.add_argument("--learn-kernel", action="store_true")
    p.add_argument("--encoder", type=int, default=0,
                   help="end-to-end: half-width in frames of the learned encoder (0: none)")
    p.add_argument("--warm-fraction", type=float, default=0.5,
                   help="warm-start: share of --steps spent on the two-stage fit first")
    p.add_argument("--path-alpha", type=float, default=0.1,
                   help="latent-path: the constant GTF forcing strength")
    p.add_argument("--path-seq-len", type=int, default=100,
                   help="latent-path: frames per window")
    p.add_argument("--process-noise", type=float, default=0.1,
                   help="latent-path: sd of the dynamics' error per frame / the path's sd")
    p.add_argument("--methods", nargs="+", default=["latent-path", "end-to-end", "two-stage"],
                   help="latent-path, end-to-end, two-stage, warm-start")
    args = p.parse_args(argv)
    _GTF[0] = args.gtf
    methods = {"end-to-end": end_to_end, "two-stage": two_stage, "warm-start": warm_start,
               "latent-path": latent_path}
    rows = {m: [] for m in args.methods}
    ref = []
    for seed in args.seeds:
        F, z, rates, gamma = simulate(seed, args)
        tr, te = slice(0, args.train), slice(args.train, None)
        deconv = deconvolved_rates(F[te], gamma, args.smooth)
        ref.append((d_stsp(z[te], z[tr]), rate_r(deconv, rates[te])))
        for name in args.methods:
            _, s_tr, s_te, r_pred, wall, extra = methods[name](
                F[tr], F[te], gamma, jr.fold_in(jr.key(seed), 1), args)
            d, r, d_inf, inside = scores(s_tr, s_te, _, z[tr], z[te], r_pred, rates[te])
            rows[name].append((d, r, wall, d_inf))
            print(f"seed {seed} {name:10s} D_stsp {d:.3f}  rate r {r:.3f}  D_stsp of the "
                  f"inferred states {d_inf:.3f}  free run in the box {inside:.3f}  "
                  f"{wall:.0f} s {extra}", flush=True)
    print(f"\nuptime: {os.getloadavg()}; JAX {jax.__version__}, float32, CPU "
          f"({platform.processor() or platform.machine()}); {vars(args)}\n")
    print("| method | D_stsp per seed | median D_stsp | rate r per seed | median rate r | "
          "D_stsp of the mapped inferred states (median) | wall s (median) |")
    print("|---|---|---|---|---|---|---|")
    for name, rs in rows.items():
        d = [x[0] for x in rs]
        r = [x[1] for x in rs]
        w = [x[2] for x in rs]
        di = [x[3] for x in rs]
        print(f"| {name} | {' / '.join(f'{v:.3f}' for v in d)} | {np.median(d):.3f} | "
              f"{' / '.join(f'{v:.3f}' for v in r)} | {np.median(r):.3f} | "
              f"{np.median(di):.3f} | {np.median(w):.0f} |")
    d = [x[0] for x in ref]
    r = [x[1] for x in ref]
    print(f"| deconvolved spikes (no model) | – | – | {' / '.join(f'{v:.3f}' for v in r)} | "
          f"{np.median(r):.3f} | – | – |")
    print(f"| true train vs test latent (floor) | {' / '.join(f'{v:.3f}' for v in d)} | "
          f"{np.median(d):.3f} | – | – | – | – |")


if __name__ == "__main__":
    main()
