"""Reconstruction networks: OUCR, its ablation variants, and access to the baselines."""

from oucr.models.base import ReconModel, count_parameters
from oucr.models.registry import METHODS, build_model

__all__ = ["ReconModel", "count_parameters", "METHODS", "build_model"]
