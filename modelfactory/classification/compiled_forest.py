"""A compiled predictor of the pipelines modelfactory trains, exact to float64 rounding.

This module flattens the fitted ``ColumnTransformer(OneHotEncoder, StandardScaler) →
RandomForestClassifier`` into an encoder and packed tree nodes that
:mod:`.forest_walk` walks, taking the branches scikit-learn takes (float32 features
against float64 thresholds) and averaging per-leaf class fractions over the trees; only
the order of that sum differs, within float64 rounding. It is only used after
:func:`parity_gap` confirms it agrees with the original model. Why a twin at all: ADR
0003; why this walk, serving and batch alike: ADR 0012.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelfactory.classification.forest_walk import (
    GROUP,
    MAX_FEATURES,
    MAX_NODES,
    ONE_KEY,
    float32_keys,
    float32_values,
    pack_nodes,
    thresholds_below,
    walk,
)


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
        """:meth:`encode` for a whole table (a pandas DataFrame with the input columns), column
        by column; the same numbers, as float32 (what the trees compare)."""
        import pyarrow as pa

        columns = {c: frame[c].to_numpy(dtype=np.float64) for c, *_ in self.numeric}
        for column, _ in self.categorical:
            columns[column] = pa.array(frame[column].astype(str), type=pa.string())
        return float32_values(self.encode_columns(columns))

    def encode_columns(self, columns: Mapping, threads: int = 1) -> np.ndarray:
        """The forest's keys (``float32_keys`` of :meth:`encode_frame`) of a table given as
        columns: numbers as float64 arrays, categories as Arrow string arrays; slices of
        the rows encoded by ``threads`` at once. Only the numbers need turning into keys: a
        one-hot 0 or 1 has a constant key."""
        rows = len(next(iter(columns.values()))) if columns else 0
        keys = np.zeros((rows, self.width), dtype=np.int32)  # the key of 0.0 is 0
        parts = _slices(rows, threads)
        if len(parts) <= 1:
            self._encode_keys(columns, slice(0, rows), keys)
        else:
            list(_pool(threads).map(lambda part: self._encode_keys(columns, part, keys), parts))
        return keys

    def _encode_keys(self, columns: Mapping, part: slice, keys: np.ndarray) -> None:
        import pyarrow.compute as pc

        start, stop, _ = part.indices(len(keys))
        block = keys[start:stop]
        for column, index, mean, scale in self.numeric:
            block[:, index] = float32_keys((columns[column][start:stop] - mean) / scale)
        rows = np.arange(stop - start)
        for (column, positions), categories in zip(
            self.categorical, self._category_sets, strict=True
        ):
            codes = pc.index_in(columns[column].slice(start, stop - start), value_set=categories)
            codes = codes.fill_null(-1).to_numpy()
            known = codes >= 0  # unknown category: all zeros, as handle_unknown="ignore"
            block[rows[known], next(iter(positions.values())) + codes[known]] = ONE_KEY

    @functools.cached_property
    def _category_sets(self) -> list:
        import pyarrow as pa

        return [pa.array(list(positions), type=pa.string()) for _, positions in self.categorical]


@dataclass(frozen=True)
class _Forest:
    nodes: np.ndarray  # per node: one packed word (forest_walk's layout), trees one after another
    leaf_values: np.ndarray  # per node: share of the positive class among its samples (leaves)
    roots: np.ndarray  # per tree: its root node
    depths: np.ndarray  # per tree: its depth (the lockstep walk's number of steps)

    def predict_positive(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Mean positive fraction of the leaves the rows of X reach, over all trees.

        X is cast to float32 first, as scikit-learn casts it; ``threads`` walk slices of
        the rows at once (the compiled walk releases the GIL).
        """
        return self.predict_keys(float32_keys(X), threads)

    def predict_keys(self, keys: np.ndarray, threads: int = 1) -> np.ndarray:
        """:meth:`predict_positive` of rows already turned into keys (``float32_keys``)."""
        keys = np.ascontiguousarray(keys, dtype=np.int32)
        total = np.zeros(len(keys))
        slices = _slices(len(keys), threads)
        if len(slices) <= 1:
            walk(keys, self.nodes, self.leaf_values, self.roots, self.depths, total)
        else:
            list(
                _pool(threads).map(
                    lambda s: walk(
                        keys[s], self.nodes, self.leaf_values, self.roots, self.depths, total[s]
                    ),
                    slices,
                )
            )
        return total / self.roots.size


def _slices(rows: int, threads: int) -> list[slice]:
    """Up to ``threads`` slices of whole lockstep groups (small tables stay in one)."""
    per = -(-rows // max(1, threads))
    per = max(GROUP * 64, -(-per // GROUP) * GROUP)
    return [slice(start, min(rows, start + per)) for start in range(0, rows, per)]


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="forest-walk")


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
    forest = _compile_forest(classifier, positive=1)
    if forest is None:
        return None
    return CompiledClassifier(encoder, forest, tuple(classifier.classes_))


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


def _compile_forest(forest: RandomForestClassifier, positive: int) -> _Forest | None:
    words, values, roots, depths = [], [], [], []
    offset = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        order = _pre_order(tree.children_left, tree.children_right)
        new = np.empty(tree.node_count, dtype=np.int64)
        new[order] = np.arange(tree.node_count)
        leaf = tree.children_left == -1
        right = np.where(leaf, new, new[np.where(leaf, 0, tree.children_right)]) + offset
        keys = float32_keys(thresholds_below(np.where(leaf, 0.0, tree.threshold)))
        word = np.empty(tree.node_count, dtype=np.int64)
        word[new] = pack_nodes(tree.feature, keys, right, leaf)
        counts = tree.value[:, 0, :]
        totals = counts.sum(axis=1)
        value = np.zeros(tree.node_count)
        value[new] = np.where(leaf, counts[:, positive] / np.where(totals == 0, 1.0, totals), 0.0)
        words.append(word)
        values.append(value)
        roots.append(offset)
        depths.append(tree.max_depth)
        offset += tree.node_count
    if offset >= MAX_NODES or forest.n_features_in_ > MAX_FEATURES:
        return None  # beyond the packed word's fields: scikit-learn serves
    return _Forest(
        nodes=np.concatenate(words),
        leaf_values=np.concatenate(values),
        roots=np.asarray(roots, dtype=np.int64),
        depths=np.asarray(depths, dtype=np.int64),
    )


def _pre_order(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Node ids in pre-order (a node, its left subtree, its right one): the left child of a
    node is the next node. scikit-learn builds its trees in that order already."""
    internal = np.flatnonzero(left != -1)
    if np.array_equal(left[internal], internal + 1):
        return np.arange(left.size)
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if left[node] != -1:
            stack += [int(right[node]), int(left[node])]
    return np.asarray(order, dtype=np.int64)


def parity_gap(compiled: CompiledClassifier, model, frame) -> float:
    """Largest absolute difference of positive-class probability between the twin and the model."""
    reference = model.predict_proba(frame)[:, list(model.classes_).index(compiled.classes[1])]
    ours = compiled.predict_positive(frame.to_dict(orient="records"))
    return float(np.max(np.abs(reference - ours))) if len(frame) else 0.0
