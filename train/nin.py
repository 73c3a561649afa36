"""Network in Network on CIFAR-10.

    pixeljax train nin --data ../path/to/cifar10 --workdir runs/nin --export checkpoints/nin
    pixeljax train nin_cpu --data ../path/to/cifar10 --workdir runs/nin_cpu --export checkpoints/nin

The full recipe reaches the paper's accuracy on a GPU. ``nin_cpu``, the shipped checkpoint's
schedule, trades accuracy for hours on a 2-core CPU: batch 64 (faster per image on a CPU than
128), 2 epochs with half an epoch of warm-up, then one more epoch from those weights (a warm
restart of the schedule at a lower peak).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="nin", epochs=40, batch_size=128, learning_rate=0.1,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)

_CPU = RECIPE.replace(batch_size=64)
SCHEDULES = {"cpu": (_CPU.replace(epochs=2, learning_rate=0.05, warmup_epochs=0.5),
                     _CPU.replace(epochs=1, learning_rate=0.02, warmup_epochs=0.1))}
