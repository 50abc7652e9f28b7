"""``thompson``: Thompson sampling, served as P(arm is best) under the posterior.

Sampling an arm with probability P(arm is best | data) is exactly Thompson
sampling (Thompson 1933; Chapelle & Li 2011), and it gives the router an honest
probability to log. P(best) is computed by numerical integration
(``bandit._best_arm``: P(k best) = ∫ f_k Π_{j≠k} F_j, accurate to well under
10⁻³), so the answer is an exact, deterministic function of the state: computed
once per state and eligible set, identical after a snapshot round trip, and the
probability the router samples with is the one it logs.

``samples`` is accepted for compatibility with existing configurations and
snapshots, range-checked (100 to 1,000,000) and ignored: the integral needs no draws.

Families:

- ``beta`` (default; rewards in [0, 1]): Beta(α₀ + S, β₀ + n − S) per arm, where
  S is the (discounted) reward sum. A fractional reward r adds r to α and 1 − r
  to β: the Beta posterior's moment-matching update for a reward with mean r,
  which keeps the posterior mean at the empirical mean.
- ``gaussian`` (any finite reward): the mean's posterior under a normal model
  with unknown variance and a conjugate prior worth ``weight`` pseudo-observations
  of mean ``mean`` and variance ``variance``: ``m + sqrt(s²/n') · t(n')``
  (Student-t with n' = n + weight degrees of freedom).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._arm_stats import read_discount
from ._best_arm import beta_best_probabilities, student_t_best_probabilities
from ._change_detection import read_change_detection
from ._context_free import ContextFreePolicy
from ._errors import FeedbackError, SpecError
from ._policy import FloatArray, Policy
from ._registry import register
from ._spec import SpecReader
from ._types import Arm, Context, Feedback

# Accepted for compatibility only (see the module docstring).
DEFAULT_SAMPLES = 2000


@register
class ThompsonPolicy(ContextFreePolicy):
    """Probability of each arm = its posterior probability of having the highest mean."""

    type_name = "thompson"

    @classmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        family = reader.choice("family", "beta", ("beta", "gaussian"))
        prior = reader.section("prior")
        if family == "beta":
            prior_params = {
                "alpha": prior.number("alpha", 1.0, low=0.0, low_open=True),
                "beta": prior.number("beta", 1.0, low=0.0, low_open=True),
            }
        else:
            prior_params = {
                "mean": prior.number("mean", 0.0),
                "variance": prior.number("variance", 1.0, low=0.0, low_open=True),
                "weight": prior.number("weight", 1.0, low=0.0, low_open=True),
            }
        prior.finish()
        samples = reader.integer("samples", DEFAULT_SAMPLES, low=100, high=1_000_000)
        discount = read_discount(reader)
        return cls(arms, floor=floor, seed=seed, discount=discount,
                   params={"family": family, "prior": prior_params, "samples": samples,
                           **read_change_detection(reader)})

    def _validate_params(self) -> None:
        if self.params.get("family") not in ("beta", "gaussian"):
            raise SpecError("policy.family", f"must be beta or gaussian, got "
                                             f"{self.params.get('family')!r}")

    def _check_reward(self, feedback: Feedback) -> None:
        if self.params["family"] == "beta" and not 0.0 <= feedback.reward <= 1.0:
            raise FeedbackError(
                f"thompson (beta) takes rewards in [0, 1], got {feedback.reward!r} for "
                f"{feedback.arm!r}; use family: gaussian for other ranges"
            )

    def _weights(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        if len(offered) == 1:
            return np.ones(1)
        index = [self._arms.index(arm) for arm in offered]
        prior = self.params["prior"]
        n = self.stats.n[index]
        total = self.stats.total[index]
        if self.params["family"] == "beta":
            # Discounting and float error can push n - S a hair below 0.
            return beta_best_probabilities(prior["alpha"] + total,
                                           prior["beta"] + np.maximum(n - total, 0.0))
        weight = prior["weight"]
        n_post = n + weight
        mean = (total + weight * prior["mean"]) / n_post
        second = self.stats.total_sq[index] + weight * (prior["variance"] + prior["mean"] ** 2)
        variance = np.maximum(second / n_post - mean**2, 1e-12)
        return student_t_best_probabilities(mean, np.sqrt(variance / n_post), n_post)

    def posterior_means(self) -> FloatArray:
        """Each arm's posterior mean reward, in arm order."""
        prior = self.params["prior"]
        stats = self.stats
        if self.params["family"] == "beta":
            alpha = prior["alpha"] + stats.total
            beta = prior["beta"] + stats.n - stats.total
            return np.asarray(alpha / (alpha + beta), dtype=np.float64)
        weight = prior["weight"]
        return np.asarray((stats.total + weight * prior["mean"]) / (stats.n + weight),
                          dtype=np.float64)
