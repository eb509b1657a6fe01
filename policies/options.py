"""What the controller can be asked for, without importing torch: the settings classes
(`trainables.learner.LearnerSettings`, the agents') read it to check their values before any
model is built."""

MESSAGE_PASSING = ("two-way", "one-way")
"""The ways the controller's GNN passes messages (`policies.gnn`; the first is the default):
two-way, the official code's (each center hears from all K-1 others), or one-way (weaker ->
better edges only)."""
