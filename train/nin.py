"""Network in Network on CIFAR-10.

    pixeljax train nin --data ../path/to/cifar10 --workdir runs/nin --export checkpoints/nin
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="nin", epochs=40, batch_size=128, learning_rate=0.1,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)
