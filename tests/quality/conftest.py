"""Tests that judge answers: a real chat model (SmolLM2-135M-Instruct, tests/support/real_model.py), greedy.

They fail when the plumbing loses something the model needs: the question, the knowledge, the persona, the
history. One server is shared by the session (loading costs ~30 s); the grounding tests add one with
knowledge.
"""

from tests.support.real_model import real_model_server  # noqa: F401 - a fixture, found by name
