"""The tiny test network: seconds on a CPU, for tests and examples.

    pixeljax train tiny --data ../path/to/cifar10 --workdir runs/tiny --epochs 2
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="tiny", epochs=5, batch_size=64, learning_rate=0.05,
                     warmup_epochs=0.5, weight_decay=5e-4, checkpoint_every=20)
