"""ResNet-20 (He et al. 2016) for CIFAR-10: size, layers, shapes and the option-A shortcut.

The full network is only built abstractly (``nnx.eval_shape``); one residual block is run.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixeljax.analysis import layer_names
from pixeljax.models import (
    create_model,
    model_names,
    parameter_count,
    split_activations,
    split_for_inference,
)
from pixeljax.models.resnet import BasicBlock
from pixeljax.training import load_recipe


def conv_bn(cin, cout):
    """A 3x3 convolution without bias followed by batch norm (scale and bias)."""
    return 9 * cin * cout + 2 * cout


# Stem, then per stage 3 blocks of two convolutions (option-A shortcuts have no weights),
# then the 64 -> 10 classifier with bias.
RESNET20 = (conv_bn(3, 16)
            + 6 * conv_bn(16, 16)
            + conv_bn(16, 32) + 5 * conv_bn(32, 32)
            + conv_bn(32, 64) + 5 * conv_bn(64, 64)
            + 64 * 10 + 10)
BLOCKS = [f"block{s}_{b}" for s in (1, 2, 3) for b in (1, 2, 3)]


@pytest.fixture(scope="module")
def resnet():
    return nnx.eval_shape(lambda: create_model("resnet20"))


def test_resnet20_is_registered_and_has_a_training_recipe():
    assert "resnet20" in model_names()
    recipe = load_recipe("resnet20")
    assert recipe.model == "resnet20" and recipe.learning_rate == 0.1


def test_resnet20_has_the_papers_0_27m_parameters(resnet):
    assert parameter_count(resnet) == RESNET20 == 269_722


def test_the_layers_are_the_stem_each_residual_block_and_the_classifier(resnet):
    assert resnet.layer_names == ("stem", *BLOCKS, "logits")


def test_logits_have_one_score_per_class(resnet):
    apply, params = split_for_inference(resnet)
    out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct((5, 32, 32, 3), jnp.uint8))
    assert out.shape == (5, 10) and out.dtype == jnp.float32


def test_activations_follow_the_three_stages_in_order(resnet):
    activations, params = split_activations(resnet)
    assert layer_names(jax.tree_util.Partial(activations, params), (32, 32, 3)) == \
        ("input", "stem", *BLOCKS, "logits")
    out = jax.eval_shape(lambda p, x: [a for _, a in activations(p, x)], params,
                         jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
    shapes = [a.shape for a in out]
    assert shapes == ([(2, 32, 32, 3), (2, 32, 32, 16)] + [(2, 32, 32, 16)] * 3
                      + [(2, 16, 16, 32)] * 3 + [(2, 8, 8, 64)] * 3 + [(2, 10)])


def test_a_downsampling_shortcut_is_a_strided_identity_zero_padded_on_both_sides():
    block = nnx.eval_shape(lambda: BasicBlock(16, 32, stride=2, rngs=nnx.Rngs(0)))
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 16)).astype(np.float32)
    expected = np.zeros((2, 4, 4, 32), np.float32)
    expected[..., 8:24] = x[:, ::2, ::2, :]  # 8 zero channels each side
    np.testing.assert_array_equal(np.asarray(block.shortcut(jnp.asarray(x))), expected)


def test_a_block_adds_its_input_to_the_residual_branch_before_the_relu():
    block = BasicBlock(16, 16, stride=1, rngs=nnx.Rngs(0))
    block.eval()
    block.second.norm.scale[...] = jnp.zeros(16)  # silence the residual branch
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 16)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(block(jnp.asarray(x))), np.maximum(x, 0), atol=1e-6)
    block.second.norm.bias[...] = jnp.full(16, 0.5)  # now the branch adds a constant 0.5
    np.testing.assert_allclose(np.asarray(block(jnp.asarray(x))), np.maximum(x + 0.5, 0),
                               atol=1e-6)
