"""`dynrnn evaluate MODEL DATA`: the reconstruction measures of a saved model."""

from __future__ import annotations

import json
import math

from ._config import load_series


def register(sub):
    p = sub.add_parser("evaluate", help="measures of a saved model on a test series")
    p.add_argument("model", help="model file written by dr.save / dynrnn reconstruct")
    p.add_argument("data", help="test series: .npy, .nc/.h5 or dataset:NAME")
    p.add_argument("--dt", type=float, help="time step, to report λ per time unit")
    p.add_argument("--lyapunov-steps", type=int, default=10_000,
                   help="map iterations averaged for the largest Lyapunov exponent")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=main)


def main(args) -> int:
    import dynrnn as dr

    model = dr.load(args.model)
    x, attrs = load_series(args.data, name="data")
    ev = dr.evaluate(model, x, lyapunov_steps=args.lyapunov_steps)
    ev.pop("generated", None)
    dt = args.dt or attrs.get("dt")
    if dt:
        ev["max_lyapunov_per_time"] = ev["max_lyapunov"] / float(dt)
    if args.json:
        print(json.dumps(ev))
    else:
        for k, v in ev.items():
            print(f"{k:<24}{v:>12.4f}" if isinstance(v, float) and not math.isnan(v)
                  else f"{k:<24}{v!s:>12}")
    return 0
