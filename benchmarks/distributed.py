"""Time per update of `dr.fit` across two JAX processes on this machine, against one process.

Three launches of the same fit (shPLRNN M 3 / H 50, GTF with a constant α = 0.2, batch
16 × 201, float32, no checkpoints): one process with one CPU device, one process with two
(`--xla_force_host_platform_device_count=2`), and two processes of one device each joined by
`jax.distributed.initialize` (coordinator on 127.0.0.1; the CPU collectives go through Gloo
over TCP). The time per update is measured between the end of the first host call
(compilation excluded) and the end of the last. (Adaptive GTF's batched LAPACK calls were
seen to deadlock jaxlib's CPU thread pool on a 2-core machine, hence the constant α.)

Usage: python benchmarks/distributed.py [--steps 1000] [--steps-per-call 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile


WORKER = """
import faulthandler, json, sys, time
faulthandler.dump_traceback_later(300, exit=True)  # a hang shows where, then ends the run
pid, nproc, port, steps, per_call = map(int, sys.argv[1:6])
import jax
if nproc > 1:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
import jax.random as jr, numpy as np
from jax.sharding import Mesh
import dynrnn as dr
x = np.asarray(dr.datasets.load("lorenz63_train")["state"].values, np.float32)
model = dr.models.ShallowPLRNN(latent=3, hidden=50, obs=3, key=jr.PRNGKey(0))
mesh = Mesh(np.array(jax.devices()), ("batch",)) if len(jax.devices()) > 1 else None
times = []
dr.fit(model, x, mesh=mesh, n_steps=steps, batch_size=16, seq_len=200, key=jr.PRNGKey(1),
       steps_per_call=per_call, progress=False, teacher_forcing=dr.GTF(0.2),
       callbacks=[lambda *a: times.append(time.perf_counter())])
print(json.dumps({"ms": 1e3 * (times[-1] - times[0]) / (steps - per_call)}))
"""


def _launch(nproc: int, devices: int, args) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(WORKER)
    procs = [subprocess.Popen([sys.executable, f.name, str(pid), str(nproc), str(port),
                               str(args.steps), str(args.steps_per_call)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              text=True)
             for pid in range(nproc)]
    outs = [p.communicate(timeout=600) for p in procs]
    os.unlink(f.name)
    if any(p.returncode for p in procs):
        sys.exit("a worker failed:\n" + "\n".join(err[-3000:] for _, err in outs))
    return json.loads(outs[0][0].strip().splitlines()[-1])["ms"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--steps-per-call", type=int, default=50)
    args = p.parse_args()
    one = _launch(1, 1, args)
    two_dev = _launch(1, 2, args)
    two_proc = _launch(2, 1, args)
    print(f"# dr.fit across processes — {platform.machine()}, {os.cpu_count()} cores, "
          f"{args.steps} updates, {args.steps_per_call} per host call")
    print("| | ms per update | vs one process, one device | vs one process, two devices |")
    print("|---|---|---|---|")
    print(f"| one process, one device | {one:.2f} | 1.00 | {one / two_dev:.2f} |")
    print(f"| one process, two devices | {two_dev:.2f} | {two_dev / one:.2f} | 1.00 |")
    print(f"| two processes, one device each | {two_proc:.2f} | {two_proc / one:.2f} | "
          f"{two_proc / two_dev:.2f} |")


if __name__ == "__main__":
    main()
