"""The DigitsConvNet dataset: scikit-learn's bundled digits and their deterministic train/held-out split.

Kept apart from the training code (which builds the network) so that the stage writing the split as
image folders depends on the data alone, not on every network file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DigitsSplit:
    """The deterministic train/held-out split; images are (N, 1, 8, 8) float32 in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(*, seed: int, test_fraction: float) -> DigitsSplit:
    """Load sklearn's digits (values 0..16, ink high) and split it reproducibly by ``seed``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return DigitsSplit(x[train], y[train], x[test], y[test])
