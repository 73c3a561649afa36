"""VGG16 on CIFAR-10, shortened for a 2-core CPU: the first of the shipped checkpoint's three
stages (then ``vgg16_cpu_finetune`` and ``vgg16_cpu_finetune2``).

    pixeljax train vgg16_cpu --data ../path/to/cifar10 --workdir runs/vgg16_cpu

The full recipe (train/vgg16.py) reaches the paper's accuracy on a GPU; this one trades accuracy
for hours: 3 epochs, batch 64 (faster per image on a CPU than 128), half an epoch of warm-up.
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="vgg16", epochs=3, batch_size=64, learning_rate=0.05,
                     warmup_epochs=0.5, weight_decay=5e-4, label_smoothing=0.1)
