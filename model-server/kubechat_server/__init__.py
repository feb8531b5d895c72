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


def child_environment() -> dict[str, str]:
    """The environment for a native child process (llama-server): ours, less the wait policy this package
    chose for torch. A llama-server built with OpenMP (``hack/llama-server``'s native build) asleep at its
    barriers ran at 0.56x of plain llama-server at 1 client and 0.73x at 32 (run 8: a 135M model's token is
    hundreds of tiny ops, each waking the team); spinning, it runs as plain llama-server does, and a busy
    neighbour hurts both alike. A policy the user set still reaches it."""
    env = dict(os.environ)
    if SERVER_WAIT_POLICY:
        env.pop("OMP_WAIT_POLICY", None)
    return env
