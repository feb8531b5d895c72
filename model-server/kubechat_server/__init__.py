"""kubechat's model server: one image that serves any GODEL (seq2seq) or Llama-2 (causal) model."""

import os

# torch's OpenMP threads wait for work asleep, not spinning. libgomp otherwise spins ~300k times at every
# barrier: beside one busy process, a spinning thread burns the CPU its partner needs. Measured
# (bench/results/server.md, run 6; 8 clients, 2 threads on 2 CPUs, SmolLM2-135M, one busy neighbour):
# spinning, the transformers engine fell to 0.15x of its rate without the neighbour, at 190 CPU ms per token
# instead of 50; asleep, 0.55x (0.82x on a quiet machine, run 8), at the same CPU per token. Set before torch
# loads libgomp, which reads it once. A value set by the user wins. The llama-server child does not inherit
# this default (see ``child_environment``).
SERVER_WAIT_POLICY = "PASSIVE" if "OMP_WAIT_POLICY" not in os.environ else None
if SERVER_WAIT_POLICY:
    os.environ["OMP_WAIT_POLICY"] = SERVER_WAIT_POLICY

# OpenMP barrier spins of the llama-server child before it sleeps (see ``child_environment``).
CHILD_SPIN_COUNT = 300


def child_environment() -> dict[str, str]:
    """The environment for a native child process (llama-server): ours, with a short spin instead of the
    wait policy this package chose for torch. A llama-server built with OpenMP (``hack/llama-server``'s
    native build) meets a barrier at each of the hundreds of tiny ops of a 135M model's token. Measured
    (bench/results/server.md, runs 8-9; 2 threads on 2 CPUs, plain llama-server with libgomp's default
    spin of 300k as the reference): asleep at every barrier it ran at 0.56x of the reference at 1 client;
    spinning 300k, it matched it but fell to 0.03-0.05x beside one busy neighbour; spinning 300 times
    (then sleeping) it ran at ~0.9x quiet and ~0.55-0.6x beside the neighbour. A wait policy or spin count
    the user set still reaches the child."""
    env = dict(os.environ)
    if SERVER_WAIT_POLICY:
        env.pop("OMP_WAIT_POLICY", None)
        env.setdefault("GOMP_SPINCOUNT", str(CHILD_SPIN_COUNT))
    return env
