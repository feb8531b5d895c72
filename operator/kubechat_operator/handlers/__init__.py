"""Reconciles of each custom resource: read spec → build children → apply → derive and write status."""
