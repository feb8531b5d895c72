"""kubechat's model server: one image that serves any GODEL (seq2seq) or Llama-2 (causal) model."""

import os

# OpenMP threads wait for work asleep, not spinning. libgomp (torch's, and llama-server's when built with
# OpenMP, as hack/llama-server's native build is) otherwise spins ~300k times at every barrier: beside one
# busy process, a spinning thread burns the CPU its partner needs. Measured (bench/results/server.md, run 6;
# 8 clients, 2 threads on 2 CPUs, SmolLM2-135M, one busy neighbour): spinning, both engines fell to 0.15x of
# their rate without the neighbour, at 190 and 130 CPU ms per token instead of 50 and 42; waiting asleep,
# 0.55x and 0.47x, using the same CPU per token with the neighbour as without (33, 27-29 ms), and faster
# without it too. Set before torch loads libgomp, which reads it once; the llama-server child inherits it.
# A value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
