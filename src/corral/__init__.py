"""corral: run open-weight LLMs on your own machines, and write down what it did."""

__version__ = "0.1.0"
