"""Pure PyTorch / Pyro models of market features: numpy arrays in, numpy arrays out."""
from .base import BaseModel
from .standardizer import Standardizer
from .bnn import BayesianNN, Prediction
from .calibration import (calibration_error, crps, fit_variance_scale, interval_coverage,
                          predictive_nll)
from .ebm import EnergyModel
from .jem import JointEnergyClassifier, expected_calibration_error
from .rbm import GaussianRBM
from .realnvp import RealNVP
from .score import ScoreModel
from .classical_density import GaussianMixtureModel, GaussianModel
from .empirical import EmpiricalSample
from .garch import GarchT
from .conditional_flow import ConditionalRealNVP
from .conditional_score import ConditionalScoreModel
from .mixture_bnn import MixtureBNN
from .multitask_bnn import MultiTaskBNN
from .sequence_bnn import SequenceBNN

__all__ = ["BaseModel", "Standardizer", "EnergyModel", "JointEnergyClassifier", "GaussianRBM",
           "expected_calibration_error", "BayesianNN", "Prediction", "calibration_error", "crps",
           "fit_variance_scale", "interval_coverage", "predictive_nll", "RealNVP", "ScoreModel",
           "GaussianModel", "GaussianMixtureModel", "GarchT", "EmpiricalSample", "ConditionalRealNVP",
           "ConditionalScoreModel", "MixtureBNN", "MultiTaskBNN", "SequenceBNN"]
