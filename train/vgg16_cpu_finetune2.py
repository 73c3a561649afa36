"""VGG16 on CIFAR-10, third stage of the shipped CPU checkpoint: three more epochs from the
weights of ``vgg16_cpu_finetune`` at a low learning rate (VGG16 gains most below 0.01).

    pixeljax train vgg16_cpu --data ../path/to/cifar10 --workdir runs/vgg16_cpu
    pixeljax train vgg16_cpu_finetune --data ../path/to/cifar10 --workdir runs/vgg16_cpu_finetune
    pixeljax train vgg16_cpu_finetune2 --data ../path/to/cifar10 --workdir runs/vgg16_cpu_finetune2 --export checkpoints/vgg16 --dtype float16

``init_from`` is the second stage's work dir, relative to where the command runs
(``--init-from`` names another).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="vgg16", epochs=3, batch_size=64, learning_rate=0.008,
                     warmup_epochs=0.05, weight_decay=5e-4, label_smoothing=0.1,
                     init_from="runs/vgg16_cpu_finetune")
