"""Robustness levels (Kotyan & Vargas) of the shipped AllConv and NiN, at CPU scale.

    pixeljax evaluate levels-cpu --data ../shared/data/cifar10 --out runs/levels-cpu
    pixeljax report runs/levels-cpu

Kotyan & Vargas ("Adversarial robustness assessment: why in evaluation both L0 and L-infinity
attacks are necessary", arXiv 1906.06026) assess a network by two families of attacks over a
range of strengths: the pixel attack (L0) at 1, 3, 5 and 10 pixels, and the threshold attack
(L-infinity) at th = 1, 3, 5 and 10 (on the 0-255 scale), searched by CMA-ES as they recommend
for it. Non-targeted, on a seeded sample of 30 CIFAR-10 test images (seed 0: the first 30 of
the published suite's 500), population 100 and 30 generations for every cell (a smaller budget
than the paper's 400 x 100, the same for both families). The report's "Robustness levels"
table gives, per victim and level, attack success and robust accuracy with Wilson intervals;
resumable.
"""

from pixeljax.evaluation import AttackSpec, Suite, Variant, Victim

SUITE = Suite(
    name="levels-cpu",
    description="Robustness levels of AllConv and NiN: the pixel attack at 1, 3, 5, 10 pixels "
                "and the threshold attack at th 1, 3, 5, 10.",
    victims=(Victim("allconv"), Victim("nin")),
    pixels=(1, 3, 5, 10),
    modes=("non-targeted",),
    sample=30,
    attack=AttackSpec(popsize=100, maxiter=30),
    variants=tuple(Variant(f"th{th}", attack={"threshold": th, "search": "cmaes"})
                   for th in (1, 3, 5, 10)),
)
