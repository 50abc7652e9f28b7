"""``squarecb``: a contextual policy in numpy, without Vowpal Wabbit.

**Model.** One ridge regression per arm on the context's features
(``_feature_index``: numbers as values, strings one-hot, a bias): arm a's
expected reward is ŷₐ = wₐ·x. A weight vector per arm over the shared features
is what VW's shared × action interaction (``-q sa``) gives it.

**Learning.** Recursive least squares (Sherman–Morrison), exact ridge
regression after every event: wₐ minimises λ‖wₐ − mₐ‖² + Σ (r − wₐ·x)² over the
events where arm a was chosen, with Pₐ = (λI + Σ xxᵀ)⁻¹ kept up to date in
O(d²) per event (d: features learned so far, bias included). SquareCB's oracle
is a square-loss regression on the chosen arm's reward, unweighted: no
importance weighting (VW's ``--squarecb`` sets the probability to 1 when it
learns, too), since the exploration itself keeps every arm's data coming. RLS
rather than a normalised adaptive SGD like VW's: it is exact after every event,
has no learning rate to tune, and on ``bench/regret.py``'s contextual cases it
earns more than VW's ``--squarecb`` (SGD) with the same features.

**Exploration.** Inverse gap weighting (Foster & Rakhlin 2020), with VW's
defaults: γ = gamma_scale · t^gamma_exponent, t the events learned; over the K offered
arms, pₐ = 1 / (K + γ·(ŷ_best − ŷₐ)) for every arm but the best (the first of
the highest), which gets the rest. Rewards are maximised (VW minimises cost =
−reward: the same rule). γ is scaled for rewards in about [0, 1].

**Arms.** A new arm's prior mean mₐ is the mean of the current arms' weights
(VW starts a new action from the shared weights), with a fresh Pₐ = I/λ.

**Snapshots** carry the feature names and every array's float64 bytes
(base64): a restored policy answers and learns bit for bit as the original.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from ._errors import FeedbackError
from ._feature_index import BIAS, FeatureIndex
from ._policy import FloatArray, Policy
from ._registry import register
from ._spec import SpecReader
from ._types import Arm, Context, Feedback

DEFAULT_GAMMA_SCALE = 10.0
DEFAULT_GAMMA_EXPONENT = 0.5
DEFAULT_RIDGE = 1.0
DEFAULT_MAX_FEATURES = 256
MAX_FEATURES_LIMIT = 1024  # Pₐ is d × d: 8 MiB per arm at the limit
_DTYPE = np.dtype("<f8")


@register
class SquareCBPolicy(Policy):
    """SquareCB over per-arm ridge regressions (see the module docstring).

    Spec keys: ``gamma_scale`` (10), ``gamma_exponent`` (0.5), ``ridge`` (λ, 1),
    ``max_features`` (columns before names share them by hashing, 256).
    """

    type_name = "squarecb"
    contextual = True

    def __init__(
        self,
        arms: Sequence[Arm],
        *,
        floor: float = 0.0,
        seed: int = 0,
        gamma_scale: float = DEFAULT_GAMMA_SCALE,
        gamma_exponent: float = DEFAULT_GAMMA_EXPONENT,
        ridge: float = DEFAULT_RIDGE,
        max_features: int = DEFAULT_MAX_FEATURES,
    ) -> None:
        super().__init__(arms, floor=floor, seed=seed)
        self.gamma_scale = gamma_scale
        self.gamma_exponent = gamma_exponent
        self.ridge = ridge
        self.max_features = max_features
        self._index = FeatureIndex(max_features)
        self._t = 0
        k = len(self._arms)
        # Weights are stored features × arms, so a decision gathers whole rows.
        self._w: FloatArray = np.zeros((1, k))
        self._p: FloatArray = np.full((k, 1, 1), 1.0 / ridge)

    @classmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        gamma_scale = reader.number("gamma_scale", DEFAULT_GAMMA_SCALE, low=0.0, low_open=True)
        gamma_exponent = reader.number("gamma_exponent", DEFAULT_GAMMA_EXPONENT, low=0.0)
        ridge = reader.number("ridge", DEFAULT_RIDGE, low=0.0, low_open=True)
        max_features = reader.integer("max_features", DEFAULT_MAX_FEATURES, low=2,
                                      high=MAX_FEATURES_LIMIT)
        return cls(arms, floor=floor, seed=seed, gamma_scale=gamma_scale,
                   gamma_exponent=gamma_exponent, ridge=ridge, max_features=max_features)

    @property
    def learned(self) -> int:
        """Events learned so far: the t of γ = gamma_scale · t^gamma_exponent."""
        return self._t

    def scores(self, context: Context | None, offered: Sequence[Arm] | None = None
               ) -> FloatArray:
        """ŷ per offered arm (default every arm), in the policy's arm order, for ``context``."""
        arms = self.arms if offered is None else tuple(offered)
        return self._scores(context, self._offered(arms))

    # -- the policy hooks -------------------------------------------------------

    def _scores(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        columns, values = self._index.encode(context, grow=False)
        # The rows of the context's columns, arms across: one small gather and a dot.
        rows = self._w.take(columns, axis=0)
        if len(offered) != len(self._arms):
            rows = rows[:, [self._arms.index(arm) for arm in offered]]
        scores: FloatArray = np.dot(values, rows)
        return scores

    def _preferences(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        scores = self._scores(context, offered)
        k = scores.size
        gamma = self.gamma_scale * self._t ** self.gamma_exponent
        best = int(scores.argmax())
        shares: FloatArray = 1.0 / (k + gamma * (scores[best] - scores))
        shares[best] = 0.0
        shares[best] = 1.0 - shares.sum()
        return shares

    def _learn(self, batch: list[Feedback]) -> None:
        # Encode the whole batch first: a bad context or eligible set refuses the
        # batch before anything is learned (or any feature name is kept).
        size = len(self._index)
        try:
            encoded = [self._example(item) for item in batch]
        except Exception:
            self._index.truncate(size)
            raise
        self._grow(len(self._index))
        rows = {arm: i for i, arm in enumerate(self._arms)}
        for item, (columns, values) in zip(batch, encoded, strict=True):
            self._update(rows[item.arm], np.array(columns, dtype=np.intp), np.array(values),
                         float(item.reward))
        self._t += len(batch)

    def _example(self, item: Feedback) -> tuple[list[int], list[float]]:
        if item.eligible is not None:
            # Arms removed since the decision still count as offered then.
            offered = item.eligible
            if item.arm not in offered:
                raise FeedbackError(f"arm {item.arm!r} is not among the eligible arms "
                                    f"{list(offered)!r}")
            if len(set(offered)) != len(offered) or not all(
                    isinstance(arm, str) and arm for arm in offered):
                raise FeedbackError(f"eligible arms must be unique non-empty names, "
                                    f"got {list(offered)!r}")
        return self._index.encode(item.context, grow=True)

    def _update(self, row: int, columns: np.ndarray, values: FloatArray, reward: float) -> None:
        """One Sherman–Morrison step of arm ``row``'s ridge regression.

        A column may repeat (hashed names): each sum below adds its values up.
        """
        p = self._p[row]
        px = p[:, columns] @ values  # P x
        s = 1.0 + float(values @ px[columns])  # 1 + xᵀ P x
        error = reward - float(self._w[columns, row] @ values)
        self._w[:, row] += px * (error / s)
        # P ← P − P x xᵀ P / s, as u uᵀ: u_i·u_j is u_j·u_i, so P stays exactly symmetric.
        u = px / math.sqrt(s)
        p -= np.outer(u, u)

    def _grow(self, size: int) -> None:
        """Columns for features learned for the first time: weight 0, variance 1/λ."""
        old = self._w.shape[0]
        if size == old:
            return
        k = len(self._arms)
        w = np.zeros((size, k))
        w[:old] = self._w
        p = np.zeros((k, size, size))
        p[:, :old, :old] = self._p
        new = np.arange(old, size)
        p[:, new, new] = 1.0 / self.ridge
        self._w, self._p = w, p

    def _on_add_arm(self, arm: Arm) -> None:
        size = self._w.shape[0]
        prior = self._w.mean(axis=1, keepdims=True)
        self._w = np.concatenate([self._w, prior], axis=1)
        fresh = np.eye(size)[np.newaxis] / self.ridge
        self._p = np.concatenate([self._p, fresh])

    def _on_remove_arm(self, arm: Arm, index: int) -> None:
        self._w = np.delete(self._w, index, axis=1)
        self._p = np.delete(self._p, index, axis=0)

    # -- snapshots -------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "gamma_scale": self.gamma_scale,
            "gamma_exponent": self.gamma_exponent,
            "ridge": self.ridge,
            "max_features": self.max_features,
            "learned": self._t,
            "features": self._index.names,
            "weights": _encode(self._w),
            "covariances": _encode(self._p),
        }

    @classmethod
    def _restore(cls, arms: list[Arm], floor: float, seed: int, state: dict[str, Any]) -> Self:
        policy = cls(arms, floor=floor, seed=seed, gamma_scale=float(state["gamma_scale"]),
                     gamma_exponent=float(state["gamma_exponent"]),
                     ridge=float(state["ridge"]), max_features=int(state["max_features"]))
        features = state["features"]
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ValueError("features must be a list of names")
        if len(set(features)) != len(features) or BIAS in features \
                or len(features) >= policy.max_features:
            raise ValueError("features repeat or exceed max_features")
        policy._index = FeatureIndex(policy.max_features, features)
        size, k = len(policy._index), len(arms)
        policy._w = _decode(state["weights"], (size, k))
        policy._p = _decode(state["covariances"], (k, size, size))
        policy._t = int(state["learned"])
        if policy._t < 0:
            raise ValueError(f"learned must be ≥ 0, got {policy._t}")
        return policy


def _encode(array: FloatArray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=_DTYPE).tobytes()).decode("ascii")


def _decode(text: object, shape: tuple[int, ...]) -> FloatArray:
    if not isinstance(text, str):
        raise TypeError(f"expected base64 text, got {type(text).__name__}")
    raw = base64.b64decode(text, validate=True)
    if len(raw) != _DTYPE.itemsize * math.prod(shape):
        raise ValueError(f"{len(raw)} bytes do not hold a {shape} float64 array")
    array = np.frombuffer(raw, dtype=_DTYPE).reshape(shape).astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("non-finite values")
    return array
