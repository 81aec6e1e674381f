"""The control plane: one pipeline for a deployment (prepare → claim → start → gate), its
recorder, and the supervisor and fleet `corral serve` runs."""
