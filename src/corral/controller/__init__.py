"""The controller: desired vs actual deployments, restarts, readiness, the verify gate."""
