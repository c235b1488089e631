"""The benchmark workloads, shared by the demo and the comparison harness.

The frame is the Dash workload brain is measured on: 5 float64 columns,
2 int64 columns and one string column of 100,000 distinct 12-character
values, seeded so every run builds the same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """The benchmark DataFrame with ``rows`` rows."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"{i:012d}" for i in range(min(100_000, rows))])
    columns = {f"price_{i}": rng.random(rows) for i in range(5)}
    columns["units"] = rng.integers(0, 1_000, rows)
    columns["order_id"] = rng.integers(0, 1 << 40, rows)
    columns["sku"] = pd.array(vocabulary[rng.integers(0, len(vocabulary), rows)], dtype="str")
    return pd.DataFrame(columns)


def make_array(nbytes: int, seed: int = 1) -> np.ndarray:
    """A float64 array of ``nbytes`` bytes of seeded random values."""
    return np.random.default_rng(seed).random(nbytes // 8)
