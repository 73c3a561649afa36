"""Robustness curves of the shipped AllConv behind input defences and after one-pixel
adversarial fine-tuning, at CPU scale.

    pixeljax evaluate robustness-cpu --data ../shared/data/cifar10 --out runs/robustness-cpu
    pixeljax report runs/robustness-cpu

The shipped AllConv, undefended and behind each defence of ``pixeljax.victims.defences`` (median and
Gaussian smoothing, bit-depth reduction, Gaussian noise at inference scored over 4 draws), and
the shipped ``allconv-adv1px`` (AllConv fine-tuned on one-pixel adversarial examples found by
the project's own DE, ``allconv_adv1px`` in ``train/allconv.py``), x
1, 3 and 5 pixels, DE non-targeted, on a seeded sample of 30 CIFAR-10 test images (seed 0:
the first 30 images of the published suite's 500), population 100 and 30 generations (a
smaller budget than the paper's, the same for every cell). The attack sees the whole defended
pipeline, so it is adaptive by construction. The report's Robustness section gives clean
accuracy, attack success and robust accuracy per cell with Wilson intervals, the clean-accuracy
cost of each defence, and the curves of robust accuracy against pixels changed. About 2.5 hours
on a 2-core CPU (one-pixel attacks behind the filters and bit-depth reduction are scored
incrementally; multi-pixel attacks and the noise defence densely); resumable. The noise defence, scored densely over its
draws at every pixel count, runs last.
"""

from pixeljax.evaluation import AttackSpec, Suite, Victim

SUITE = Suite(
    name="robustness-cpu",
    description="The shipped AllConv behind input defences, and fine-tuned on one-pixel "
                "examples, x 1, 3, 5 pixels: clean accuracy, success and robust accuracy.",
    victims=(Victim("allconv"),
             Victim("allconv-median3", architecture="allconv", defence="median3"),
             Victim("allconv-gauss3", architecture="allconv", defence="gauss3"),
             Victim("allconv-bits4", architecture="allconv", defence="bits4"),
             Victim("allconv-adv1px", architecture="allconv",
                    checkpoint="shipped:allconv-adv1px"),
             Victim("allconv-noise8", architecture="allconv", defence="noise8x4")),
    pixels=(1, 3, 5),
    modes=("non-targeted",),
    sample=30,
    attack=AttackSpec(popsize=100, maxiter=30),
)
