"""ResNet-20 on CIFAR-10, second stage of the shipped CPU checkpoint: five more epochs from the
weights of ``resnet20_cpu`` (a warm restart of the schedule at a lower peak).

    pixeljax train resnet20_cpu --data ../path/to/cifar10 --workdir runs/resnet20_cpu
    pixeljax train resnet20_cpu_finetune --data ../path/to/cifar10 --workdir runs/resnet20_cpu_finetune --export checkpoints/resnet20

``init_from`` is the first stage's work dir, relative to where the command runs
(``--init-from`` names another).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="resnet20", epochs=5, batch_size=64, learning_rate=0.04,
                     warmup_epochs=0.2, weight_decay=5e-4, label_smoothing=0.1,
                     init_from="runs/resnet20_cpu")
