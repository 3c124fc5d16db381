"""The compiled forest's walk for large tables, in numba: batch scoring's hot loop.

The arrays are the compiled twin's (:mod:`.compiled_forest`). Rows are cut into blocks
spread over the cores; within a block one tree at a time walks every row, so a tree's nodes
stay in the CPU cache while it is walked (walking every tree for one row before the next
touches all 150 trees' nodes per row, and ran 3x slower here). Why numba: ADR 0007.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np

BLOCK_ROWS = 1024
# The compiled kernel is cached beside this file (~1.5 s saved per process) where that is
# writable; in a read-only image numba would find no cache location and refuse to compile.
_CACHE = os.access(Path(__file__).parent, os.W_OK)


@numba.njit(parallel=True, nogil=True, cache=_CACHE)
def walk_forest(X, feature, threshold, left, right, positive_fraction, roots):  # pragma: no cover
    n = X.shape[0]
    out = np.zeros(n)
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for block in numba.prange(blocks):
        start = block * BLOCK_ROWS
        stop = min(n, start + BLOCK_ROWS)
        for tree in range(roots.size):
            root = roots[tree]
            for row in range(start, stop):
                node = root
                while left[node] != node:  # leaves point at themselves
                    # float32 feature against float64 threshold, as scikit-learn compares
                    if X[row, feature[node]] <= threshold[node]:
                        node = left[node]
                    else:
                        node = right[node]
                out[row] += positive_fraction[node]
        for row in range(start, stop):
            out[row] /= roots.size
    return out
