"""A compiled, numpy-only predictor of the pipelines modelfactory trains, exact to float64 rounding.

This module flattens the fitted ``ColumnTransformer(OneHotEncoder, StandardScaler) →
RandomForestClassifier`` into arrays and walks all trees at once, using the same arithmetic as
scikit-learn (float32 features compared to float64 thresholds, per-leaf class fractions averaged
over trees; only the order of that sum differs, within float64 rounding). It is only used after
:func:`parity_gap` confirms it agrees with the original model. Why, against scikit-learn and
ONNX Runtime, with the figures: ADR 0003, docs/adr/0003-compiled-forest.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@dataclass(frozen=True)
class _Encoder:
    numeric: tuple[tuple[str, int, float, float], ...]  # (column, output index, mean, scale)
    categorical: tuple[tuple[str, dict[str, int]], ...]  # (column, category -> output index)
    width: int

    def encode(self, records: Sequence[Mapping]) -> np.ndarray:
        out = np.zeros((len(records), self.width), dtype=np.float64)
        for row, record in enumerate(records):
            for column, index, mean, scale in self.numeric:
                out[row, index] = (float(record[column]) - mean) / scale
            for column, positions in self.categorical:
                position = positions.get(str(record[column]))
                if position is not None:  # unknown category: all zeros, as handle_unknown="ignore"
                    out[row, position] = 1.0
        return out

    def encode_frame(self, frame) -> np.ndarray:
        """:meth:`encode` for a whole table at once (a pandas DataFrame with the input columns),
        column by column; the same numbers, as float32 (what the trees compare). Batch scoring
        feeds it to the model's own forest (ADR 0007)."""
        import pandas as pd

        out = np.zeros((len(frame), self.width), dtype=np.float64)
        for column, index, mean, scale in self.numeric:
            out[:, index] = (frame[column].to_numpy(dtype=np.float64) - mean) / scale
        rows = np.arange(len(frame))
        for column, positions in self.categorical:
            categories = list(positions)
            codes = pd.Categorical(frame[column].astype(str), categories=categories).codes
            known = codes >= 0  # unknown category: all zeros, as handle_unknown="ignore"
            first = positions[categories[0]]
            out[rows[known], first + codes[known]] = 1.0
        return out.astype(np.float32)


@dataclass(frozen=True)
class _Forest:
    feature: np.ndarray  # per node: the feature it splits on (0 at leaves)
    threshold: np.ndarray  # per node: go left when feature <= threshold (+inf at leaves)
    children: np.ndarray  # per node n: [2n] the right child, [2n + 1] the left (leaves: itself)
    leaf: np.ndarray  # per node: is it a leaf
    positive_fraction: np.ndarray  # per node: share of the positive class among its samples
    roots: np.ndarray  # per tree: its root node

    # Walk this many levels between drops of the finished (row, tree) paths: checking every
    # level costs more than it saves, never checking walks every path to the deepest leaf.
    COMPACT_EVERY = 4

    def predict_positive(self, X: np.ndarray) -> np.ndarray:
        """Mean positive fraction of the leaves the rows of X reach, over all trees.

        Every (row, tree) path advances one level per step, all at once; finished paths
        are summed and dropped every ``COMPACT_EVERY`` levels, so the walk costs the
        paths' real lengths rather than the deepest tree's depth for all of them.
        """
        # scikit-learn compares float32 features with float64 thresholds; so do we.
        X = X.astype(np.float32).astype(np.float64)
        n, width = X.shape
        trees = self.roots.size
        values = X.ravel()
        nodes = np.tile(self.roots, n)
        offsets = np.repeat(np.arange(n) * width, trees)  # where each path's row starts in values
        rows = np.repeat(np.arange(n), trees)
        total = np.zeros(n)
        while nodes.size:
            for _ in range(self.COMPACT_EVERY):
                go_left = values[offsets + self.feature[nodes]] <= self.threshold[nodes]
                nodes = self.children[2 * nodes + go_left]
            done = self.leaf[nodes]
            if done.any():
                reached = self.positive_fraction[nodes[done]]
                total += np.bincount(rows[done], weights=reached, minlength=n)
                running = ~done
                nodes, offsets, rows = nodes[running], offsets[running], rows[running]
        return total / trees


@dataclass(frozen=True)
class CompiledClassifier:
    """Positive-class probabilities straight from JSON-like records."""

    encoder: _Encoder
    forest: _Forest
    classes: tuple

    def predict_positive(self, records: Sequence[Mapping]) -> np.ndarray:
        return self.forest.predict_positive(self.encoder.encode(records))


def compile_classifier(model) -> CompiledClassifier | None:
    """A compiled twin of ``model``, or None when its structure is not one this module knows."""
    if not (isinstance(model, Pipeline) and len(model.steps) == 2):
        return None
    preprocess, classifier = model.steps[0][1], model.steps[1][1]
    if not (
        isinstance(preprocess, ColumnTransformer) and isinstance(classifier, RandomForestClassifier)
    ):
        return None
    if len(classifier.classes_) != 2 or classifier.n_outputs_ != 1:
        return None
    encoder = _compile_encoder(preprocess)
    if encoder is None:
        return None
    return CompiledClassifier(encoder, _compile_forest(classifier), tuple(classifier.classes_))


def _compile_encoder(preprocess: ColumnTransformer) -> _Encoder | None:
    numeric, categorical, offset = [], [], 0
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder":
            if transformer != "drop":
                return None
            continue
        if isinstance(transformer, OneHotEncoder):
            if transformer.drop_idx_ is not None or getattr(
                transformer, "_infrequent_enabled", False
            ):
                return None
            for column, categories in zip(columns, transformer.categories_, strict=True):
                categorical.append((column, {str(c): offset + i for i, c in enumerate(categories)}))
                offset += len(categories)
        elif isinstance(transformer, StandardScaler):
            means = transformer.mean_ if transformer.with_mean else np.zeros(len(columns))
            scales = transformer.scale_ if transformer.with_std else np.ones(len(columns))
            for column, mean, scale in zip(columns, means, scales, strict=True):
                numeric.append((column, offset, float(mean), float(scale)))
                offset += 1
        else:
            return None
    return _Encoder(tuple(numeric), tuple(categorical), offset)


def _compile_forest(forest: RandomForestClassifier) -> _Forest:
    features, thresholds, lefts, rights, fractions, roots = [], [], [], [], [], []
    offset = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        n = tree.node_count
        leaf = tree.children_left == -1
        index = np.arange(n)
        # Leaves point at themselves, so walking past a leaf is harmless.
        lefts.append(np.where(leaf, index, tree.children_left) + offset)
        rights.append(np.where(leaf, index, tree.children_right) + offset)
        features.append(np.where(leaf, 0, tree.feature))
        thresholds.append(np.where(leaf, np.inf, tree.threshold))
        values = tree.value[:, 0, :]
        totals = values.sum(axis=1)
        fractions.append(values[:, 1] / np.where(totals == 0, 1.0, totals))
        roots.append(offset)
        offset += n
    left, right = np.concatenate(lefts).astype(np.intp), np.concatenate(rights).astype(np.intp)
    children = np.empty(2 * left.size, dtype=np.intp)
    children[0::2], children[1::2] = right, left  # indexed by 2 * node + (go left)
    return _Forest(
        feature=np.concatenate(features).astype(np.intp),
        threshold=np.concatenate(thresholds).astype(np.float64),
        children=children,
        leaf=left == np.arange(left.size),
        positive_fraction=np.concatenate(fractions),
        roots=np.asarray(roots, dtype=np.intp),
    )


def parity_gap(compiled: CompiledClassifier, model, frame) -> float:
    """Largest absolute difference of positive-class probability between the twin and the model."""
    reference = model.predict_proba(frame)[:, list(model.classes_).index(compiled.classes[1])]
    ours = compiled.predict_positive(frame.to_dict(orient="records"))
    return float(np.max(np.abs(reference - ours))) if len(frame) else 0.0
