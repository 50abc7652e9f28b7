"""Real scikit-learn classifiers of different quality, and the data they are judged on.

The data is synthetic (numpy, seeded; nothing is downloaded) and built so that the
best variant depends on the context, which is what a contextual bandit must learn:

* six standard-normal features ``f0`` … ``f5``;
* where ``f0 < 0`` (region A) the label is linear in ``f3, f4, f5`` (plus a little
  noise): logistic regression is nearly perfect there, a depth-3 tree is poor;
* where ``f0 ≥ 0`` (region B) the label is ``|f1| > 0.674`` (balanced, and with no
  linear signal): the depth-3 tree is nearly perfect there, logistic regression is
  a coin toss;
* 3 % of labels are flipped, so nothing is perfect.

Measured on the pool (seed 0), overall and in A / B: logistic 0.72 (0.93 / 0.52),
tree 0.77 (0.57 / 0.97), naive Bayes 0.73 (0.79 / 0.67), forest 0.90 (0.83 / 0.97, best
overall), stump 0.61; routing A to logistic and B to the tree scores ≈ 0.95. Training
all five takes about 0.15 s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

FEATURES: tuple[str, ...] = ("f0", "f1", "f2", "f3", "f4", "f5")
"""The feature names, in column order (the context keys the traffic generator sends)."""

_FACTORIES: dict[str, Callable[[int], Any]] = {
    "logistic": lambda seed: LogisticRegression(max_iter=500),
    "tree": lambda seed: DecisionTreeClassifier(max_depth=3, random_state=seed),
    "naive_bayes": lambda seed: GaussianNB(),
    "forest": lambda seed: RandomForestClassifier(n_estimators=15, max_depth=6,
                                                  random_state=seed),
    "stump": lambda seed: DecisionTreeClassifier(max_depth=1, random_state=seed),
}
MODEL_KINDS: tuple[str, ...] = tuple(_FACTORIES)
"""The model kinds a variant can serve."""

_TRAIN = 4000
_POOL = 2000
_FLIP = 0.03


@dataclass(frozen=True, slots=True)
class Pool:
    """Held-out examples with their true labels, for traffic and for judging variants."""

    features: NDArray[np.float64]
    labels: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.labels)

    def context(self, index: int) -> dict[str, float]:
        """Example ``index``'s features by name (what ``X-Bandit-Context`` carries)."""
        return {name: float(v) for name, v in zip(FEATURES, self.features[index], strict=True)}

    def region_a(self) -> NDArray[np.bool_]:
        """Which examples lie in region A (``f0 < 0``), where logistic regression is best."""
        return self.features[:, 0] < 0


@dataclass(frozen=True, slots=True)
class Dataset:
    """The training set and the held-out pool."""

    train_features: NDArray[np.float64]
    train_labels: NDArray[np.int64]
    pool: Pool


def make_dataset(seed: int = 0) -> Dataset:
    """The two-region data described in the module docstring, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    n = _TRAIN + _POOL
    x = rng.normal(size=(n, len(FEATURES)))
    weights = np.array([0.0, 0.0, 0.0, 1.0, -0.8, 0.6])
    linear = (x @ weights + 0.15 * rng.normal(size=n)) > 0
    band = np.abs(x[:, 1]) > 0.674  # 0.674 is the median of |N(0, 1)|: balanced classes
    y = np.where(x[:, 0] < 0, linear, band).astype(np.int64)
    flip = rng.random(n) < _FLIP
    y = np.where(flip, 1 - y, y)
    return Dataset(x[:_TRAIN], y[:_TRAIN], Pool(x[_TRAIN:], y[_TRAIN:]))


class Model:
    """A fitted classifier answering ``(label, score)`` per row, score = P(label)."""

    def __init__(self, kind: str, estimator: Any) -> None:
        self.kind = kind
        self._estimator = estimator

    def predict(self, rows: NDArray[np.float64]) -> list[tuple[int, float]]:
        """Label and its probability for each row of ``rows`` (shape n × len(FEATURES))."""
        if rows.ndim != 2 or rows.shape[1] != len(FEATURES):
            raise ValueError(f"expected rows of {len(FEATURES)} features, got shape "
                             f"{tuple(rows.shape)}")
        proba = np.asarray(self._estimator.predict_proba(rows), dtype=np.float64)
        best = proba.argmax(axis=1)
        classes = self._estimator.classes_
        return [(int(classes[b]), float(p[b])) for b, p in zip(best, proba, strict=True)]

    def accuracy(self, pool: Pool, mask: NDArray[np.bool_] | None = None) -> float:
        """Share of ``pool`` (or of its ``mask``ed part) this model labels correctly."""
        x, y = (pool.features, pool.labels) if mask is None else (
            pool.features[mask], pool.labels[mask])
        predicted = np.array([label for label, _ in self.predict(x)])
        return float(np.mean(predicted == y))


def train_models(kinds: Iterable[str], dataset: Dataset, seed: int = 0) -> dict[str, Model]:
    """One fitted model per distinct kind in ``kinds``; unknown kinds raise ValueError."""
    models: dict[str, Model] = {}
    for kind in kinds:
        if kind in models:
            continue
        factory = _FACTORIES.get(kind)
        if factory is None:
            raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(MODEL_KINDS)}")
        estimator = factory(seed)
        estimator.fit(dataset.train_features, dataset.train_labels)
        models[kind] = Model(kind, estimator)
    return models


def accuracies(models: Mapping[str, Model], pool: Pool) -> dict[str, float]:
    """Each model's accuracy on the whole pool."""
    return {kind: model.accuracy(pool) for kind, model in models.items()}


def rows_from(values: Sequence[Sequence[float]]) -> NDArray[np.float64]:
    """``values`` as a float matrix; ValueError naming the problem if it is not one."""
    try:
        rows = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"instances must be lists of numbers: {exc}") from None
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if not np.all(np.isfinite(rows)):
        raise ValueError("instances must be finite numbers")
    return rows
