"""AllConv on CIFAR-10.

    pixeljax train allconv --data ../path/to/cifar10 --workdir runs/allconv --export checkpoints/allconv
    pixeljax train allconv_adv1px --data ../path/to/cifar10 --workdir runs/allconv_adv1px --export checkpoints/allconv-adv1px

SGD with Nesterov momentum, batch 128, warm-up then cosine decay, random crop + flip.

``allconv_adv1px`` fine-tunes the shipped AllConv against one-pixel attacks: two more epochs
with half of each batch replaced by one-pixel adversarial versions of its images, found on the
fly by three DE generations (population 10) of the project's attack on the current weights.
About 2 hours on a 2-core CPU; resumable. The recipe, the option included, is recorded in the
exported victim's metadata (``recipe``, ``initialised_from``).
"""

from pixeljax.training import TrainConfig

RECIPE = TrainConfig(model="allconv", epochs=40, batch_size=128, learning_rate=0.1,
                     warmup_epochs=1.0, weight_decay=5e-4, label_smoothing=0.1)

SCHEDULES = {"adv1px": (RECIPE.replace(
    epochs=2, learning_rate=0.01, warmup_epochs=0.1, init_from="shipped:allconv",
    adversarial_fraction=0.5, adversarial="de", adversarial_popsize=10,
    adversarial_generations=3),)}
