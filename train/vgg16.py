"""VGG16 (two dense layers of 2048) on CIFAR-10.

    pixeljax train vgg16 --data ../path/to/cifar10 --workdir runs/vgg16 --export checkpoints/vgg16
    pixeljax train vgg16_cpu --data ../path/to/cifar10 --workdir runs/vgg16_cpu --export checkpoints/vgg16 --dtype float16

The full recipe reaches the paper's accuracy on a GPU. ``vgg16_cpu``, the shipped checkpoint's
schedule, trades accuracy for hours on a 2-core CPU: batch 64 (faster per image on a CPU than
128), 3 epochs, then two warm restarts from the previous stage's weights at lower peaks, 5
epochs and 3 (VGG16 gains most below 0.01).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="vgg16", epochs=40, batch_size=128, learning_rate=0.05,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)

_CPU = RECIPE.replace(batch_size=64)
SCHEDULES = {"cpu": (_CPU.replace(epochs=3, warmup_epochs=0.5),
                     _CPU.replace(epochs=5, learning_rate=0.03, warmup_epochs=0.2),
                     _CPU.replace(epochs=3, learning_rate=0.008, warmup_epochs=0.05))}
