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
4. ablations on the same images: the DE as the public implementations run it (DE/best/1 with
   F drawn from [0.5, 1) each generation, as SciPy and ART do; AllConv and NiN, 100 images),
   the sweep over 27 colours (0, 128, 255 per channel; AllConv, 100 images);
5. DE with 3 and 5 pixels, non-targeted: 100 AllConv images (scored densely);
6. the paper's protocol on 100 AllConv images, scored in bfloat16 with every result re-checked
   in float32 (its first 20 images are those of cell 3, so the two precisions compare).

Cells run in this order; cells 1-3 took about 11 hours on a 2-core CPU, the rest adds about 13.
The run is resumable: the same command continues it, and a cell given more images keeps the
rows it has. Victims without a checkpoint are skipped.
"""

from pixeljax.evaluation import AttackSpec, Suite, Variant, Victim

SUITE = Suite(
    name="paper-cpu",
    description="The shipped victims at CPU scale: sweep, one-pixel DE, the paper's protocol, "
                "3 and 5 pixels.",
    victims=(Victim("allconv"), Victim("nin"), Victim("vgg16"), Victim("resnet20")),
    sample=500,
    attack=AttackSpec(popsize=400, maxiter=100),
    variants=(Variant("best1-dither", attack={"strategy": "best1", "dither": 0.5}),
              Variant("27-colours", levels=(0, 128, 255)),
              Variant("bfloat16", attack={"precision": "bfloat16"})),
    cells=(
        ("allconv/1px-sweep", 500),
        ("allconv/1px-non-targeted", 100),
        ("nin/1px-sweep", 500),
        ("allconv/1px-all-targets", 20),
        ("vgg16/1px-sweep", 100),
        ("resnet20/1px-sweep", 100),
        ("nin/1px-non-targeted", 100),
        ("vgg16/1px-non-targeted", 30),
        ("allconv/1px-non-targeted+best1-dither", 100),
        ("nin/1px-non-targeted+best1-dither", 100),
        ("allconv/1px-sweep+27-colours", 100),
        ("allconv/3px-non-targeted", 100),
        ("allconv/5px-non-targeted", 100),
        ("allconv/1px-all-targets+bfloat16", 100),
    ),
)
