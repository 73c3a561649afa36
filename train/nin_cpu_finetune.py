"""Network in Network on CIFAR-10, second stage of the shipped CPU checkpoint: one more epoch
from the weights of ``nin_cpu`` (a warm restart of the schedule at a lower peak).

    pixeljax train nin_cpu --data ../path/to/cifar10 --workdir runs/nin_cpu
    pixeljax train nin_cpu_finetune --data ../path/to/cifar10 --workdir runs/nin_cpu_finetune --export checkpoints/nin

``init_from`` is the first stage's work dir, relative to where the command runs
(``--init-from`` names another).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="nin", epochs=1, batch_size=64, learning_rate=0.02,
                     warmup_epochs=0.1, weight_decay=5e-4, label_smoothing=0.1,
                     init_from="runs/nin_cpu")
