"""o2o: offline-to-online reinforcement learning."""

__version__ = "0.1.0"
