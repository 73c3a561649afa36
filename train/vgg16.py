"""VGG16 (two dense layers of 2048) on CIFAR-10.

    pixeljax train vgg16 --data ../path/to/cifar10 --workdir runs/vgg16 --export checkpoints/vgg16
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="vgg16", epochs=40, batch_size=128, learning_rate=0.05,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)
