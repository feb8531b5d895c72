"""HTTP routes, one module per API family: health/ops, the seeds' API, the OpenAI API."""
