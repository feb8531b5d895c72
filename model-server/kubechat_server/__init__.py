"""kubechat's model server: one image that serves any GODEL (seq2seq) or Llama-2 (causal) model."""

import os

# OpenMP threads wait for work asleep, not spinning. libgomp (torch's, and llama-server's when built with
# OpenMP, as hack/llama-server's native build is) otherwise spins ~300k times at every barrier: beside one
# busy process, two threads on two CPUs burn the CPU the other thread needs. Measured (bench/results/
# server.md, "Busy neighbour"; 8 clients, 2 threads, SmolLM2-135M): kubechat-transformers fell to 0.29x with
# the neighbour (300 CPU ms per token instead of 105); waiting passively, 0.93x (36-45 ms per token). Set
# before torch loads libgomp, which reads it once; the llama-server child inherits it. A value set by the
# user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
