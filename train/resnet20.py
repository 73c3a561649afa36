"""ResNet-20 (He et al. 2016) on CIFAR-10.

    pixeljax train resnet20 --data ../path/to/cifar10 --workdir runs/resnet20 --export checkpoints/resnet20

SGD with Nesterov momentum, batch 128, peak learning rate 0.1 as in the paper, warm-up then
cosine decay (instead of the paper's steps at 32k and 48k iterations), random crop + flip.
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="resnet20", epochs=60, batch_size=128, learning_rate=0.1,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)
