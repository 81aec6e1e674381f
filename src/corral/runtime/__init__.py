"""How a process lives: a supervised local subprocess, its states, and readiness."""

from corral.runtime.process import ProcessSpec, ProcessState, SupervisedProcess

__all__ = ["ProcessSpec", "ProcessState", "SupervisedProcess"]
