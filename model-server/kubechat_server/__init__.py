"""kubechat's model server: one image that serves any GODEL (seq2seq) or Llama-2 (causal) model."""
