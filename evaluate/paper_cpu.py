"""The published CPU-scale one-pixel statistics of the shipped victims, in one suite.

    pixeljax evaluate paper-cpu --data ../shared/data/cifar10 --out runs/paper-cpu
    pixeljax report runs/paper-cpu

A seeded random sample (seed 0) of 500 CIFAR-10 test images; every cell attacks the first N of
it (samples of one seed are nested, so every method of a victim sees some of the same images),
with the DE as the paper describes it (population 400, 100 generations, DE/rand/1, F = 0.5, no
crossover):

1. the exhaustive one-pixel sweep (every pixel x the 8 corners of the colour cube, all classes at
   once): 500 images for AllConv and NiN, 100 for VGG16 and ResNet-20;
2. DE, one pixel, non-targeted: 100 images for AllConv and NiN, 30 for VGG16;
3. the paper's protocol (DE towards each of the 9 other classes, one pixel): 20 AllConv images;
4. DE with 3 and 5 pixels, non-targeted: 20 AllConv images (scored densely).

Cells run in this order (AllConv's sweep and DE first, so the two compare early); about 8 hours
on a 2-core CPU in all. The run is resumable: the same command continues it. Victims without a
checkpoint are skipped.
"""

from pixeljax.evaluation import AttackSpec, Suite, Victim

SUITE = Suite(
    name="paper-cpu",
    description="The shipped victims at CPU scale: sweep, one-pixel DE, the paper's protocol, "
                "3 and 5 pixels.",
    victims=(Victim("allconv"), Victim("nin"), Victim("vgg16"), Victim("resnet20")),
    pixels=(1, 3, 5),
    modes=("non-targeted", "all-targets", "sweep"),
    sample=500,
    attack=AttackSpec(popsize=400, maxiter=100),
    cell_images=(
        ("allconv/1px-sweep", 500),
        ("allconv/1px-non-targeted", 100),
        ("nin/1px-sweep", 500),
        ("allconv/1px-all-targets", 20),
        ("vgg16/1px-sweep", 100),
        ("resnet20/1px-sweep", 100),
        ("nin/1px-non-targeted", 100),
        ("vgg16/1px-non-targeted", 30),
        ("allconv/3px-non-targeted", 20),
        ("allconv/5px-non-targeted", 20),
    ),
)
