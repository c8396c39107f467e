"""OUCR benchmark: physics, masks, metrics, data, models and the experiment engine.

Heavy submodules are imported on demand, e.g. ``from oucr.masks import RandomMaskFunc``.
"""

__version__ = "0.1.0"
