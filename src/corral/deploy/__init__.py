"""`corral deploy`: the one pipeline composed for a detached run, then the planner's
figures, the verify suite and an optional quick benchmark; `stop` and `logs`."""

from corral.deploy.flow import DeployOptions, DeployResult, Services, deploy, log_lines, stop

__all__ = ["DeployOptions", "DeployResult", "Services", "deploy", "log_lines", "stop"]
