"""Training on real and synthetic data, and the compiled fast path against scikit-learn."""

import numpy as np

from modelfactory.classification.compiled_forest import compile_classifier, parity_gap
from modelfactory.classification.training import (
    ClassifierConfig,
    evaluate_classifier,
    features,
    train_classifier,
)
from modelfactory.data import bank_marketing as bank


def test_model_beats_its_baseline_on_the_real_bank_file(trained_on_real, real_split):
    model = evaluate_classifier(trained_on_real.model, real_split.holdout)
    baseline = evaluate_classifier(trained_on_real.baseline, real_split.holdout)
    assert model["roc_auc"] > baseline["roc_auc"]
    assert model["roc_auc"] > 0.78  # published results without `duration` sit near 0.80
    assert model["pr_auc"] > 0.4  # against a 0.11 positive rate
    counts = [
        model[k] for k in ("true_negatives", "false_positives", "false_negatives", "true_positives")
    ]
    assert sum(counts) == len(real_split.holdout)


def test_imbalance_strategy_is_chosen_on_validation(trained_on_real):
    assert set(trained_on_real.validation_pr_auc) == {"class_weight", "smote"}
    best = max(trained_on_real.validation_pr_auc, key=trained_on_real.validation_pr_auc.get)
    assert trained_on_real.imbalance == best


def test_the_served_model_is_plain_scikit_learn_without_the_sampler(trained_on_real):
    assert [name for name, _ in trained_on_real.model.steps] == ["preprocess", "classifier"]
    assert "duration" not in trained_on_real.model.named_steps["preprocess"].feature_names_in_


def test_smote_can_be_forced_and_yields_a_servable_pipeline():
    frame = bank.generate_bank_marketing(3000, seed=4)
    trained = train_classifier(frame, ClassifierConfig(imbalance="smote", n_estimators=20))
    assert trained.imbalance == "smote" and trained.validation_pr_auc == {}
    probabilities = trained.model.predict_proba(features(frame.head(10)))[:, 1]
    assert ((0 <= probabilities) & (probabilities <= 1)).all()


def test_compiled_forest_matches_scikit_learn_exactly_on_real_rows(trained_on_real, real_bank):
    compiled = compile_classifier(trained_on_real.model)
    assert compiled is not None
    assert parity_gap(compiled, trained_on_real.model, features(real_bank)) < 1e-12


def test_compiled_forest_ignores_unknown_categories_like_the_encoder(trained_on_real, real_bank):
    rows = features(real_bank.head(50)).copy()
    rows["job"] = "astronaut"
    rows["month"] = "smarch"
    compiled = compile_classifier(trained_on_real.model)
    reference = trained_on_real.model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(
        compiled.predict_positive(rows.to_dict(orient="records")), reference, atol=1e-12
    )


def test_the_table_encoder_feeds_the_forest_as_the_pipeline_does(trained_on_real, real_bank):
    compiled = compile_classifier(trained_on_real.model)
    table = features(real_bank).copy()
    table.loc[:99, "job"] = "astronaut"  # unknown categories: all zeros, as in serving
    np.testing.assert_array_equal(
        compiled.encoder.encode_frame(table[:500]),
        compiled.encoder.encode(table[:500].to_dict(orient="records")).astype(np.float32),
    )
    forest = trained_on_real.model.named_steps["classifier"]
    batch = forest.predict_proba(compiled.encoder.encode_frame(table))[:, 1]
    reference = trained_on_real.model.predict_proba(table)[:, 1]
    assert np.max(np.abs(batch - reference)) < 1e-12


def test_the_walk_takes_scikit_learns_branches_one_row_or_many_threads(trained_on_real, real_bank):
    compiled = compile_classifier(trained_on_real.model)
    table = features(real_bank)
    reference = trained_on_real.model.predict_proba(table)[:, 1]
    encoded = compiled.encoder.encode_frame(table)
    one_thread = compiled.forest.predict_positive(encoded)  # 41,188 rows: 4 walk alone
    np.testing.assert_array_equal(compiled.forest.predict_positive(encoded, threads=3), one_thread)
    assert np.max(np.abs(one_thread - reference)) < 1e-12
    singles = [compiled.forest.predict_positive(encoded[i : i + 1])[0] for i in range(0, 4000, 97)]
    np.testing.assert_allclose(singles, one_thread[0:4000:97], rtol=0, atol=1e-15)


def test_a_threshold_between_two_float32_values_splits_as_scikit_learn_splits():
    from modelfactory.classification.forest_walk import float32_keys, thresholds_below

    x = np.float32(0.1)  # 0.100000001490116...: above the float64 0.1
    xs = np.array([x, x, x, 0.0, -0.0], dtype=np.float32)
    t = np.array([0.1, float(x), np.nextafter(float(x), 1.0), -0.0, 0.0])
    below = float32_keys(xs) <= float32_keys(thresholds_below(t))
    as_scikit_learn = [bool(np.float64(a) <= b) for a, b in zip(xs, t, strict=True)]
    assert below.tolist() == as_scikit_learn == [False, True, True, True, True]


def test_structures_the_fast_path_does_not_know_are_left_to_scikit_learn(trained_on_real):
    assert compile_classifier(trained_on_real.baseline) is None  # logistic regression
    assert (
        compile_classifier(trained_on_real.model.named_steps["classifier"]) is None
    )  # no preprocessing


def test_the_walk_compiles_where_numba_cannot_keep_a_cache():
    """A pod's read-only root filesystem leaves numba no cache folder: it compiles at start."""
    import subprocess
    import sys

    script = (
        "import numba.core.caching as caching\n"
        "caching.CacheImpl._locator_classes = []\n"  # as where no folder is writable
        "import numpy as np\n"
        "from modelfactory.classification import forest_walk as f\n"
        "leaf = f.pack_nodes(np.array([0]), np.array([0]), np.array([0]), np.array([True]))\n"
        "out = np.zeros(1)\n"
        "f.walk(np.zeros((1, 1), np.int32), leaf, np.array([0.25]), np.array([0]),"
        " np.array([0]), out)\n"
        "print(type(f.walk._cache).__name__, out[0])\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["NullCache", "0.25"]
