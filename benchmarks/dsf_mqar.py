"""MQAR across the DSF families at equal model width (Sieber et al., NeurIPS 2024, Fig. 2/Tab. 1,
at CPU size).

Trains softmax, linear and normalised attention, S6, the qLSTM and the LRU (2 layers, one head,
no MLP, as the reference configs) on the same multi-query associative recall data with
`dr.compare`, for each learning rate given, and reports the best held-out query accuracy over
learning rates (the paper's metric). Training times are ratios to softmax attention's time in
the same run (they include compilation).

    python benchmarks/dsf_mqar.py                # the default CPU-sized run (a few minutes)
    python benchmarks/dsf_mqar.py --steps 200    # a quick look

Prints a Markdown table. What the paper compares (reference code dsf-mqar, configs and
plotting notebook): softmax, linear and normalised attention, S6 and SSD on one grid (its
ordering figure is at L = 512, 64 pairs, n = 128: softmax attention best, the selective SSMs
next, normalised above linear attention); the qLSTM only against itself with and without the
reversed-sigmoid forget gate (at L = 64, 4 pairs on an accuracy axis from 0.8 to 1); the LRU
not on MQAR. "qLSTM" is the reference's expansion 2 (hidden width 2·d_model), "qLSTM (e=1)"
the equal-width variant.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.random as jr
import numpy as np

import dynrnn as dr


MODELS = {
    "softmax attention": {"mixer": "softmax"},
    "normalized attention": {"mixer": "normalized"},
    "linear attention": {"mixer": "linear"},
    "S6": {"mixer": "s6"},
    "qLSTM": {"mixer": "qlstm"},  # the reference's expansion 2: hidden width 2·d_model
    "qLSTM (e=1)": {"mixer": "qlstm", "expansion": 1},  # hidden width d_model (equal width)
    "LRU": {"mixer": "lru"},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--d-qk", type=int, default=16, help="query/key size of attention")
    p.add_argument("--d-state", type=int, default=16, help="S6 state per channel; LRU N = 2x")
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lrs", type=str, default="3e-3", help="comma-separated learning rates")
    p.add_argument("--models", type=str, default=",".join(MODELS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    models = {}
    for name in args.models.split(","):
        spec = dict(MODELS[name])
        if spec["mixer"] in ("softmax", "linear", "normalized"):
            spec["d_qk"] = args.d_qk
        elif spec["mixer"] == "s6":
            spec["d_state"] = args.d_state
        elif spec["mixer"] == "lru":
            spec["d_state"] = 2 * args.d_state
        models[name] = spec
    task = dr.tasks.MQAR(vocab_size=args.vocab, seq_len=args.seq_len, n_pairs=args.pairs,
                         n_train=args.n_train, n_test=args.n_test)
    lrs = [float(x) for x in args.lrs.split(",")]
    t0 = time.perf_counter()
    results = []
    for lr in lrs:
        def report(model, task_name, row, lr=lr):
            print(f"  lr={lr:g} {model}: accuracy {row['accuracy']:.3f}, "
                  f"{row['train_time']:.0f} s", flush=True)

        results.append(dr.compare(models, {"mqar": task}, n_steps=args.steps,
                                  batch_size=args.batch, d_model=args.d_model,
                                  learning_rates=[lr], key=jr.PRNGKey(args.seed),
                                  callback=report))
    total = time.perf_counter() - t0
    scores = np.stack([r["score"].values[:, 0, 0, 0] for r in results])  # (lr, model)
    best = np.nanargmax(np.where(np.isnan(scores), -1, scores), axis=0)

    def base(run):  # softmax attention's time in the same run (or the first model's)
        i = list(models).index("softmax attention") if "softmax attention" in models else 0
        return float(run["train_time"].values[i, 0])

    print()
    print(f"MQAR: vocab {args.vocab}, L = {args.seq_len}, {args.pairs} pairs, "
          f"{args.n_train} train / {args.n_test} test examples, d_model = {args.d_model}, "
          f"2 layers, {args.steps} Adam steps of batch {args.batch}, lr {args.lrs}; "
          f"{platform.processor() or platform.machine()}, {jax.default_backend()}, "
          f"JAX {jax.__version__}; total {total / 60:.1f} min")
    print()
    print("| model | accuracy (best over lr) | best lr | final loss | parameters | state size "
          "| training time (× softmax, same lr) |")
    print("|---|---|---|---|---|---|---|")
    order = np.argsort(-np.nan_to_num(scores.max(axis=0), nan=-1))
    for i in order:
        r = results[best[i]].isel(model=i, task=0)
        print(f"| {str(r['model'].values)} | {scores[best[i], i]:.3f} | {lrs[best[i]]:g} | "
              f"{float(r['final_loss'][0]):.3f} | {int(r['parameters']):,} | "
              f"{int(r['state_size']):,} | {float(r['train_time']) / base(results[best[i]]):.2f} |")


if __name__ == "__main__":
    main()
