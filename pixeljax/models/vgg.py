"""VGG16 (Simonyan & Zisserman 2015) for 32x32 inputs, the one-pixel attack paper's third victim.

conv3x3 64-64, pool, 128-128, pool, 256x3, pool, 512x3, pool, 512x3, pool, dense 2048,
dense 2048, dense 10. Batch normalisation follows every hidden layer.
"""

from flax import nnx

from pixeljax.models.base import SequentialVictim
from pixeljax.models.layers import ConvBlock, Dense, MaxPool

_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def vgg16(*, rngs: nnx.Rngs, num_classes: int = 10) -> SequentialVictim:
    layers, cin = [], 3
    for s, widths in enumerate(_STAGES, start=1):
        for i, cout in enumerate(widths, start=1):
            layers.append((f"conv{s}_{i}", ConvBlock(cin, cout, 3, rngs=rngs)))
            cin = cout
        layers.append((f"pool{s}", MaxPool(2, 2)))
    layers += [
        ("fc1", Dense(cin, 2048, hidden=True, rngs=rngs)),
        ("fc2", Dense(2048, 2048, hidden=True, rngs=rngs)),
        ("logits", Dense(2048, num_classes, hidden=False, rngs=rngs)),
    ]
    return SequentialVictim(layers, num_classes=num_classes)
