"""AllConv on CIFAR-10.

    pixeljax train allconv --data ../path/to/cifar10 --workdir runs/allconv --export checkpoints/allconv

SGD with Nesterov momentum, batch 128, warm-up then cosine decay, random crop + flip.
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="allconv", epochs=40, batch_size=128, learning_rate=0.1,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)
