"""Pure PyTorch / Pyro models of market features: numpy arrays in, numpy arrays out."""
from .base import BaseModel, Standardizer
from .ebm import EnergyModel
from .jem import JointEnergyClassifier, expected_calibration_error
from .rbm import GaussianRBM

__all__ = ["BaseModel", "Standardizer", "EnergyModel", "JointEnergyClassifier", "GaussianRBM",
           "expected_calibration_error"]
