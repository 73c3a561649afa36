"""The paper's CIFAR-10 experiment at its full scale (Su, Vargas, Sakurai, TEVC 2019).

    pixeljax evaluate paper-cifar10 --data ../path/to/cifar10 --out runs/paper-cifar10
    pixeljax evaluate paper-cifar10 --data ../path/to/cifar10 --out runs/paper-500 --sample 500
    pixeljax report runs/paper-cifar10

AllConv, NiN and VGG16, each attacked with 1, 3 and 5 pixels, non-targeted and towards every
other class (the paper's protocol), with the paper's budget: population 400, 100 generations,
DE/rand/1, F = 0.5, no crossover. By default every one of the 10,000 test images; ``--sample
500`` takes the paper's random sample of 500 images (the same images for each network).
Victims without a checkpoint are skipped; ``--train-missing`` trains them first with their
recipe in train/ (on ``--train-data``, default ``--data``; hours on a GPU, days on a CPU).
"""

from pixeljax.evaluation import AttackSpec, Suite, Victim

SUITE = Suite(
    name="paper-cifar10",
    description="The one-pixel attack on CIFAR-10 with the paper's networks, pixel counts, "
                "protocol and budget.",
    victims=(Victim("allconv", recipe="allconv"),
             Victim("nin", recipe="nin"),
             Victim("vgg16", recipe="vgg16")),
    pixels=(1, 3, 5),
    modes=("non-targeted", "all-targets"),
    attack=AttackSpec(popsize=400, maxiter=100),
)
