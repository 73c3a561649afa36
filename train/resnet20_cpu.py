"""ResNet-20 on CIFAR-10, shortened for a 2-core CPU: the first of the shipped checkpoint's two
stages (then ``resnet20_cpu_finetune``).

    pixeljax train resnet20_cpu --data ../path/to/cifar10 --workdir runs/resnet20_cpu

The full recipe (train/resnet20.py) runs 60 epochs on a GPU; this one runs 6 at batch 64.
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="resnet20", epochs=6, batch_size=64, learning_rate=0.05,
                     warmup_epochs=0.5, weight_decay=5e-4, label_smoothing=0.1)
