"""VGG16 on CIFAR-10, second stage of the shipped CPU checkpoint: five more epochs from the
weights of ``vgg16_cpu`` (a warm restart of the schedule at a lower peak); the third stage is
``vgg16_cpu_finetune2``.

    pixeljax train vgg16_cpu --data ../path/to/cifar10 --workdir runs/vgg16_cpu
    pixeljax train vgg16_cpu_finetune --data ../path/to/cifar10 --workdir runs/vgg16_cpu_finetune

``init_from`` is the first stage's work dir, relative to where the command runs
(``--init-from`` names another).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="vgg16", epochs=5, batch_size=64, learning_rate=0.03,
                     warmup_epochs=0.2, weight_decay=5e-4, label_smoothing=0.1,
                     init_from="runs/vgg16_cpu")
