"""Loading, prompt formats, batching and generation."""
