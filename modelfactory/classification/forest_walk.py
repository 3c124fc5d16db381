"""The forest's tree walk, compiled by numba: packed nodes, rows walked in lockstep groups.

Every node is one 64-bit word: the feature it splits on (8 bits), its threshold as an
order-preserving 32-bit key (32 bits) and its right child (24 bits); the left child is the
next node (pre-order). A row goes left when its feature's key is at most the node's key.
Features and thresholds become keys of float32 (:func:`float32_keys`), and each threshold
is first rounded *down* to a float32 (:func:`thresholds_below`): for a float32 feature x
and a float64 threshold t, ``x <= t`` exactly when ``x <= float32_below(t)``, so the walk
takes every branch scikit-learn takes (float32 features against float64 thresholds).
A leaf's key is the smallest key, so it sends every row right, to itself.

Rows are walked tree by tree, so one tree's nodes stay in cache, and :data:`GROUP` rows
at once for the tree's depth, branch-free, so the core overlaps their loads; the rows
left over walk one at a time. Why this walk, against scikit-learn, treelite, ONNX
Runtime and the numpy walk it replaced: ADR 0012, docs/adr/0012-packed-forest-walk.md.
"""

from __future__ import annotations

import numba
import numpy as np

GROUP = 32  # rows walked in lockstep
BLOCK = 2048  # rows per pass over all the trees (their keys stay in the core's cache)
MAX_FEATURES = 1 << 8
MAX_NODES = 1 << 24
LEAF_KEY = -(1 << 31)
ONE_KEY = 0x3F800000  # the key of 1.0 (a one-hot column's "yes")


def float32_keys(values: np.ndarray) -> np.ndarray:
    """int32 keys that order as the float32 values do (-0.0 and 0.0 are one key)."""
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.int32)
    return np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits).astype(np.int32)


def float32_values(keys: np.ndarray) -> np.ndarray:
    """The float32 values of :func:`float32_keys`' keys."""
    keys = np.asarray(keys, dtype=np.int32)
    return np.where(keys < 0, keys ^ np.int32(0x7FFFFFFF), keys).astype(np.int32).view(np.float32)


def thresholds_below(thresholds: np.ndarray) -> np.ndarray:
    """Each float64 threshold rounded down to the largest float32 not above it."""
    nearest = np.asarray(thresholds, dtype=np.float64).astype(np.float32)
    above = nearest.astype(np.float64) > thresholds
    return np.where(above, np.nextafter(nearest, np.float32(-np.inf)), nearest)


def pack_nodes(
    feature: np.ndarray, threshold_key: np.ndarray, right: np.ndarray, leaf: np.ndarray
) -> np.ndarray:
    """The 64-bit node words (see the module docstring)."""
    feature = np.where(leaf, 0, feature).astype(np.int64)
    key = np.where(leaf, LEAF_KEY, threshold_key).astype(np.int64) & 0xFFFFFFFF
    return (right.astype(np.int64) << 40) | (key << 8) | feature


def _jit(function):
    """Compiled once per machine when numba can keep a cache (a read-only image cannot)."""
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)


@_jit
def walk(keys, nodes, leaf_values, roots, depths, out):  # pragma: no cover - compiled
    """Add to ``out[i]`` the leaf value each tree gives row ``i`` of ``keys`` (n x width)."""
    n, width = keys.shape
    flat = keys.ravel()
    slots = np.empty(GROUP, np.int64)
    full = n - n % GROUP
    for start in range(0, full, BLOCK):
        end = min(full, start + BLOCK)
        for tree in range(roots.size):
            root = roots[tree]
            depth = depths[tree]
            for first in range(start, end, GROUP):
                base = first * width
                for k in range(GROUP):
                    slots[k] = root
                for _ in range(depth):
                    for k in range(GROUP):
                        node = slots[k]
                        word = nodes[node]
                        key = np.int32((word >> 8) & 0xFFFFFFFF)
                        if flat[base + k * width + (word & 0xFF)] <= key:
                            slots[k] = node + 1
                        else:
                            slots[k] = word >> 40
                for k in range(GROUP):
                    out[first + k] += leaf_values[slots[k]]
    for row in range(full, n):
        base = row * width
        total = 0.0
        for tree in range(roots.size):
            node = roots[tree]
            word = nodes[node]
            key = np.int32((word >> 8) & 0xFFFFFFFF)
            while key != LEAF_KEY:
                if flat[base + (word & 0xFF)] <= key:
                    node = node + 1
                else:
                    node = word >> 40
                word = nodes[node]
                key = np.int32((word >> 8) & 0xFFFFFFFF)
            total += leaf_values[node]
        out[row] += total
    return out
