"""The published numbers of the one-pixel attack on CIFAR-10: constants of the paper.

Su, Vargas, Sakurai, "One pixel attack for fooling deep neural networks", arXiv 1710.08864
(v1, 2017) and IEEE Transactions on Evolutionary Computation 23(5), 2019 (TEVC). This table is
the only place where numbers are typed in; the report computes everything else from stored
results, and shows these beside them with their caveats.

Metrics, as the paper defines them on CIFAR-10 (each image attacked towards each other class):
  * ``success``: images perturbed to at least one target class (its "non-targeted" rate);
  * ``targeted``: successful (image, target) pairs;
  * ``confidence``: mean probability of the adversarial class over successful attacks;
  * ``classes_reached``: mean number of classes an image can be perturbed to;
  * ``accuracy``: the victim's clean accuracy.
A ``model`` of None is a number over the paper's networks together (or for an unnamed one).
"""

from __future__ import annotations

import dataclasses

TEVC = "TEVC 2019"
TEVC_ABSTRACT = "TEVC 2019, abstract"
ARXIV_V1_PRESS = "arXiv v1, as reported by press coverage"


@dataclasses.dataclass(frozen=True)
class Published:
    """One published number.

    Attributes:
      metric: "success", "targeted", "confidence", "classes_reached" or "accuracy".
      model: "allconv", "nin", "vgg16", or None for the networks together.
      pixels: pixels changed.
      value: the number (a fraction for rates).
      source: where it comes from.
      verified: checked against the paper's own text (False: an approximate target).
    """

    metric: str
    model: str | None
    pixels: int
    value: float
    source: str
    verified: bool

    @property
    def version(self) -> str:
        """The version of the paper it is from: "TEVC" or "arXiv v1"."""
        return version(self.source)


PUBLISHED: tuple[Published, ...] = (
    Published("success", "allconv", 1, 0.6871, TEVC, True),
    Published("success", "nin", 1, 0.7166, TEVC, True),
    Published("success", "vgg16", 1, 0.6353, TEVC, True),
    Published("success", None, 1, 0.6797, TEVC_ABSTRACT, True),
    Published("confidence", None, 1, 0.7403, TEVC_ABSTRACT, True),
    Published("targeted", "allconv", 1, 0.1982, TEVC, False),
    Published("targeted", "nin", 1, 0.2315, TEVC, False),
    Published("targeted", "vgg16", 1, 0.0563, TEVC, False),
    Published("accuracy", "allconv", 1, 0.856, TEVC, False),
    Published("accuracy", "nin", 1, 0.872, TEVC, False),
    Published("accuracy", "vgg16", 1, 0.833, TEVC, False),
    Published("success", None, 3, 0.820, ARXIV_V1_PRESS, False),
    Published("success", None, 5, 0.873, ARXIV_V1_PRESS, False),
    Published("classes_reached", None, 1, 2.3, ARXIV_V1_PRESS, False),
)

CAVEATS = (
    "The paper attacks the Kaggle CIFAR-10 test set (300,000 images of which 10,000 are the "
    "real test images) with its own AllConv, NiN and VGG16; the victims here are pixeljax's, "
    "trained with the recipes in train/, so their accuracy and weaknesses differ.",
    "The paper's success rate is its \"non-targeted\" rate: an image counts when at least one of "
    "its 9 targeted attacks succeeds. It compares with the all-targets rows; the non-targeted "
    "rows are a different attack (the true class's probability minimised directly).",
    "The paper samples about 500 images per network (unverified); a run on the whole test set "
    "has tighter intervals but is not the same sample.",
    "Unverified numbers (marked *) come from summaries of the paper, not its text: the targeted "
    "rates, the victims' accuracies, the 3- and 5-pixel rates and the 2.3 classes per image "
    "(press coverage of arXiv v1, whose abstract reports 70.97% success at 97.47% confidence, "
    "against 67.97% at 74.03% in the TEVC version).",
    "Targeted attacks stop once the target's probability passes the threshold (TEVC: 50%; "
    "a summary of arXiv v1 says 90%); the threshold used here is in the settings above.",
)


def version(source: str) -> str:
    """The version of the paper a :class:`Published` ``source`` is from: "TEVC" or "arXiv v1"."""
    return "TEVC" if source.startswith("TEVC") else "arXiv v1"


def published(metric: str, model: str | None, pixels: int) -> Published | None:
    """The paper's number for ``metric`` of ``model`` (None: the networks together)."""
    for p in PUBLISHED:
        if (p.metric, p.model, p.pixels) == (metric, model, pixels):
            return p
    return None


def paper_models() -> list[str]:
    """The networks the paper attacks on CIFAR-10, by pixeljax registry name."""
    return list(dict.fromkeys(p.model for p in PUBLISHED if p.model is not None))
