"""Pure PyTorch / Pyro models of market features: numpy arrays in, numpy arrays out."""
from .base import BaseModel, Standardizer

__all__ = ["BaseModel", "Standardizer"]
