"""The paper's grid on a handful of images with a small budget: minutes on a laptop.

    pixeljax evaluate quick --out runs/quick
    pixeljax report runs/quick

AllConv, NiN and VGG16 x 1, 3, 5 pixels x {non-targeted, all-targets} on the first 5 images of
the shipped CIFAR-10 sample, population 20, 10 generations. It attacks the shipped checkpoints;
a network without one is skipped (``--train-missing`` trains it first with its recipe in
train/, which needs the CIFAR-10 training set, ``--train-data``, and hours on a CPU).
"""

from pixeljax.evaluation import AttackSpec, Suite, Victim

SUITE = Suite(
    name="quick",
    description="A smoke test of the paper's grid: 5 images, population 20, 10 generations.",
    victims=(Victim("allconv", recipe="allconv"),
             Victim("nin", recipe="nin"),
             Victim("vgg16", recipe="vgg16")),
    pixels=(1, 3, 5),
    modes=("non-targeted", "all-targets"),
    images=5,
    data="sample",
    attack=AttackSpec(popsize=20, maxiter=10),
)
