"""ResNet-20 (He et al. 2016) on CIFAR-10.

    pixeljax train resnet20 --data ../path/to/cifar10 --workdir runs/resnet20 --export checkpoints/resnet20
    pixeljax train resnet20_cpu --data ../path/to/cifar10 --workdir runs/resnet20_cpu --export checkpoints/resnet20

SGD with Nesterov momentum, batch 128, peak learning rate 0.1 as in the paper, warm-up then
cosine decay (instead of the paper's steps at 32k and 48k iterations), random crop + flip: 60
epochs on a GPU. ``resnet20_cpu``, the shipped checkpoint's schedule, runs 6 epochs at batch 64
on a 2-core CPU, then 5 more from those weights (a warm restart at a lower peak).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="resnet20", epochs=60, batch_size=128, learning_rate=0.1,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)

_CPU = RECIPE.replace(batch_size=64)
SCHEDULES = {"cpu": (_CPU.replace(epochs=6, learning_rate=0.05, warmup_epochs=0.5),
                     _CPU.replace(epochs=5, learning_rate=0.04, warmup_epochs=0.2))}
