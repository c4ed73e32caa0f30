"""Unbiased pass@k and pass^k estimators, for scalars and numpy arrays."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ArrayLike = int | npt.ArrayLike


def pass_at_k(n: ArrayLike, c: ArrayLike, k: int) -> float | np.ndarray:
    """P(at least one of k draws without replacement is correct) = 1 − C(n−c, k)/C(n, k), NaN where n < k.

    Computed in the product form 1 − ∏_{j=n−c+1}^{n} (1 − k/j), which never overflows.
    """
    n_arr, c_arr = _validated(n, c, k)
    result = np.empty(n_arr.shape, dtype=float)
    for index in np.ndindex(n_arr.shape):
        total, correct = int(n_arr[index]), int(c_arr[index])
        if total < k:
            result[index] = np.nan
        elif total - correct < k:
            result[index] = 1.0
        else:
            result[index] = 1.0 - np.prod(1.0 - k / np.arange(total - correct + 1, total + 1))
    return _unwrap(result, n, c)


def pass_hat_k(n: ArrayLike, c: ArrayLike, k: int) -> float | np.ndarray:
    """P(all k draws without replacement are correct) = C(c, k)/C(n, k), NaN where n < k (τ-bench's pass^k).

    Computed in the product form ∏_{j=0}^{k−1} (c − j)/(n − j).
    """
    n_arr, c_arr = _validated(n, c, k)
    result = np.empty(n_arr.shape, dtype=float)
    steps = np.arange(k)
    for index in np.ndindex(n_arr.shape):
        total, correct = int(n_arr[index]), int(c_arr[index])
        if total < k:
            result[index] = np.nan
        elif correct < k:
            result[index] = 0.0
        else:
            result[index] = float(np.prod((correct - steps) / (total - steps)))
    return _unwrap(result, n, c)


def _validated(n: ArrayLike, c: ArrayLike, k: int) -> tuple[np.ndarray, np.ndarray]:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n), np.asarray(c))
    if np.any(n_arr < 0) or np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError("need 0 <= c <= n for every task")
    return n_arr, c_arr


def _unwrap(result: np.ndarray, n: ArrayLike, c: ArrayLike) -> float | np.ndarray:
    return float(result) if np.ndim(n) == 0 and np.ndim(c) == 0 else result
