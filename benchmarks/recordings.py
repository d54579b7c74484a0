"""Recordings benchmark: latent dynamics on the zebrafish tectum population (held-out forward
prediction R² of a shallow PLRNN started at the least-squares AR(p) and trained for k-step
prediction, and of one trained with GTF, vs least-squares AR baselines) and spike
inference on spikefinder set 5 (Pearson r at 40 ms bins vs a naive AR(1) inverse filter).

    python benchmarks/recordings.py [--steps 3000] [--frames 16919] [--seeds 3]
        [--parts prediction,headroom,gtf,evaluate,spikefinder]

Prints Markdown tables (recorded in benchmarks/log/RESULTS.md, section `## recordings`).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))

import spikefinder  # noqa: E402
import zebrafish_tectum  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--parts", default="prediction,headroom,gtf,spikefinder",
                        help="comma-separated: prediction (shPLRNN started at AR(p)), headroom "
                             "(linear vs random-feature regression), gtf "
                             "(shPLRNN + GTF and co-smoothing), evaluate (one dr.evaluate "
                             "call per model: forecast vs AR and persistence, co-smoothing), "
                             "spikefinder")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    jax.config.update("jax_enable_x64", False)
    print(f"JAX {jax.__version__}, {jax.devices()[0].platform}\n")
    for seed in range(args.seeds if "prediction" in parts else 0):
        out = zebrafish_tectum.run_prediction(seed=seed)
        val = ", ".join(f"{p}: {r.mean():.4f}" for p, r in out["val_r2"].items())
        print(f"### zebrafish tectum, shPLRNN started at AR(p) (seed {seed}): {out['dims']} "
              f"whitened PCs, {out['train']} fitting / {out['val']} validation / {out['test']} "
              f"test frames ({out['starts']} test starts); validation mean R² of AR(p) {val} → "
              f"p = {out['order']}; training {out['fit_cpu']:.1f} s CPU "
              f"({out['fit_s']:.0f} s wall); best validation loss: shPLRNN "
              f"{out['val_loss']:.5f}, linear control {out['lin_val']:.5f}, AR({out['order']}) "
              f"start {out['history'][0][1]:.5f}\n")
        print(zebrafish_tectum.prediction_table(out) + "\n")
    if "headroom" in parts:
        rows = zebrafish_tectum.headroom()
        print("### zebrafish tectum: direct regression of x_(t+k) on 5 lagged frames, linear vs "
              "linear + random ReLU features (training part → test R²)\n")
        print(zebrafish_tectum.table(dict(rows=rows), digits=4) + "\n")
    for seed in range(args.seeds if "gtf" in parts else 0):
        out = zebrafish_tectum.run(steps=args.steps, seed=seed)
        print(f"### zebrafish tectum (seed {seed}): {out['dims']} whitened PCs "
              f"({out['explained']:.0%} of the variance), {out['train']} train / {out['test']} "
              f"held-out frames at 2.2 Hz, {out['steps']} updates in {out['fit_s']:.0f} s\n")
        print(zebrafish_tectum.table(out) + "\n")
        rows = zebrafish_tectum.cosmoothing(steps=args.steps, seed=seed)
        print("co-smoothing (every 5th neuron held out; ridge read-out fitted on the training "
              "part), test R² of the 15 held-out neurons\n")
        print(zebrafish_tectum.cosmoothing_table(rows) + "\n")
    if "evaluate" in parts:
        import dynrnn as dr

        for seed in range(args.seeds):
            out = zebrafish_tectum.evaluate_recording(steps=args.steps, seed=seed)
            print(f"### zebrafish tectum, dr.evaluate on the recording (seed {seed}): every 5th "
                  f"neuron ({out['held_out'].size}) held out, {out['pcs']} whitened PCs of the "
                  f"held-in neurons ({out['explained']:.0%} of their variance), "
                  f"{out['train']} train / {out['test']} test frames at 2.2 Hz\n")
            for name, (ev, fit_s, eval_s) in out["models"].items():
                print(f"#### {name} (training {fit_s:.0f} s, dr.evaluate {eval_s:.0f} s)\n")
                print(f"D_stsp {ev['D_stsp']:.3f}, D_H {ev['D_H']:.3f}, PE(20) {ev['PE']:.3f}, "
                      f"largest Lyapunov exponent {ev['max_lyapunov'] * 2.2:.3f} per s\n")
                print(dr.training.evaluation_markdown(ev) + "\n")
    if "spikefinder" not in parts:
        return
    sf = spikefinder.run(frames=args.frames)
    print(f"### spikefinder set 5: {sf['neurons']} neurons × {sf['frames']} frames at 100 Hz, "
          "Pearson r of inferred and true spike counts in 40 ms bins\n")
    print(spikefinder.table(sf))


if __name__ == "__main__":
    main()
