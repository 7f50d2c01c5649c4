"""Classical baselines of ``LogDensity``, with its lines (``logp``, ``pvalue``, ``gate``), its parameter
``alpha``, its calibration and its walk-forward schedule: a strategy swaps one for the other with one word.

- ``GaussianDensity``: one Gaussian with full covariance (``GaussianModel``): ``logp`` is minus half the squared
  Mahalanobis distance of the features from the window's mean, plus the normalising constant;
- ``MixtureDensity``: a Gaussian mixture, its number of components chosen by BIC over ``1 .. max_components``
  (``GaussianMixtureModel``, scikit-learn).

``logp`` is the exact log-density of the raw feature vector, in the units of ``LogDensity(model="realnvp")``:
mean log-likelihoods per dimension of the three compare directly.
"""
from __future__ import annotations

from btdensity.models.classical_density import GaussianMixtureModel, GaussianModel

from .density import DensityGate

__all__ = ["GaussianDensity", "MixtureDensity"]


class GaussianDensity(DensityGate):
    """``logp`` of the bar's features under a full-covariance Gaussian fitted to the training window
    (``model_kwargs``: ``ridge``), its lower-tail ``pvalue`` against the window's held-out tail, and ``gate`` = 1
    while ``pvalue > alpha``."""

    plotinfo = dict(plotname="Gaussian density gate")
    takes_fit_kwargs = False

    def model_class(self) -> type:
        return GaussianModel


class MixtureDensity(DensityGate):
    """``logp`` of the bar's features under a Gaussian mixture fitted to the training window, its number of
    components chosen by BIC (``model_kwargs``: ``max_components`` (8), ``reg_covar``, ``max_iter``,
    ``n_init``; ``seed`` is the mixture's ``random_state``), its lower-tail ``pvalue`` against the window's
    held-out tail, and ``gate`` = 1 while ``pvalue > alpha``."""

    plotinfo = dict(plotname="Gaussian mixture density gate")
    takes_fit_kwargs = False

    def model_class(self) -> type:
        return GaussianMixtureModel
