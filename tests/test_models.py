"""The victim networks: shapes, sizes against the paper, activations and the pure apply view.

The paper-sized networks are only ever built abstractly (``nnx.eval_shape``), never run.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pixeljax.errors import PixeljaxError
from pixeljax.models import (
    create_model,
    model_names,
    parameter_count,
    split_activations,
    split_for_inference,
)

PAPER_MODELS = ("allconv", "nin", "vgg16")
REPO = Path(__file__).resolve().parents[1]


def conv_bn(k, cin, cout):
    """A k x k convolution without bias followed by batch norm (scale and bias)."""
    return k * k * cin * cout + 2 * cout


def conv_bias(k, cin, cout):
    return k * k * cin * cout + cout


# The architectures described in the docstrings of pixeljax/models/{allconv,nin,vgg}.py, layer
# by layer, as the code builds them.
ALLCONV = (conv_bn(3, 3, 96) + 2 * conv_bn(3, 96, 96) + conv_bn(3, 96, 192)
           + 3 * conv_bn(3, 192, 192) + conv_bn(1, 192, 192) + conv_bias(1, 192, 10))
NIN = (conv_bn(5, 3, 192) + conv_bn(1, 192, 160) + conv_bn(1, 160, 96)
       + conv_bn(5, 96, 192) + 2 * conv_bn(1, 192, 192)
       + conv_bn(3, 192, 192) + conv_bn(1, 192, 192) + conv_bias(1, 192, 10))
VGG16 = (conv_bn(3, 3, 64) + conv_bn(3, 64, 64)
         + conv_bn(3, 64, 128) + conv_bn(3, 128, 128)
         + conv_bn(3, 128, 256) + 2 * conv_bn(3, 256, 256)
         + conv_bn(3, 256, 512) + 2 * conv_bn(3, 512, 512)
         + 3 * conv_bn(3, 512, 512)
         + (512 * 2048 + 2 * 2048) + (2048 * 2048 + 2 * 2048)  # dense 2048 x2, no bias + BN
         + (2048 * 10 + 10))
EXPECTED_PARAMETERS = {"allconv": ALLCONV, "nin": NIN, "vgg16": VGG16}


def abstract_model(name):
    return nnx.eval_shape(lambda: create_model(name))


@pytest.mark.parametrize("name", [*PAPER_MODELS, "resnet20"])
def test_the_readme_states_each_models_parameter_count(name):
    table = (REPO / "README.md").read_text().split("| model | parameters |")[1].split("\n\n")[0]
    stated = {row.split("|")[1].strip(): row.split("|")[2].strip()
              for row in table.splitlines() if row.startswith("| ")}
    assert stated[name] == f"{parameter_count(abstract_model(name)):,}"


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_models_have_the_parameter_count_of_their_architecture(name):
    assert parameter_count(abstract_model(name)) == EXPECTED_PARAMETERS[name]


def test_tiny_model_is_small():
    assert parameter_count(create_model("tiny")) < 20_000


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32])
@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_models_map_images_to_ten_logits(name, dtype):
    apply, params = split_for_inference(abstract_model(name))
    out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct((3, 32, 32, 3), dtype))
    assert out.shape == (3, 10)
    assert out.dtype == jnp.float32


def test_tiny_model_gives_the_same_logits_for_uint8_and_float_images():
    model = create_model("tiny")
    model.eval()
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    from_uint8 = model(images)
    from_float = model(images.astype(np.float32))
    assert from_uint8.shape == (4, 10)
    np.testing.assert_array_equal(np.asarray(from_uint8), np.asarray(from_float))


def test_models_are_deterministic_in_their_seed():
    a, b, c = create_model("tiny", seed=1), create_model("tiny", seed=1), create_model("tiny")
    leaves = lambda m: jax.tree.leaves(nnx.state(m, nnx.Param))  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c)))


@pytest.mark.parametrize("name", [*PAPER_MODELS, "tiny"])
def test_activations_run_from_input_to_logits_in_layer_order(name):
    model = abstract_model(name)
    activations, params = split_activations(model)
    names = []

    def arrays(params, images):
        acts = activations(params, images)
        names.extend(layer for layer, _ in acts)
        return [a for _, a in acts]

    outs = jax.eval_shape(arrays, params, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.uint8))
    assert names == ["input", *model.layer_names]
    assert len(outs) == len(model.layer_names) + 1
    assert outs[0].shape == (2, 32, 32, 3) and outs[0].dtype == jnp.float32
    assert outs[-1].shape == (2, 10)


def test_activations_name_every_layer_and_end_with_the_logits():
    model = create_model("tiny")
    model.eval()
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    acts = model.activations(images)
    assert [name for name, _ in acts] == ["input", *model.layer_names]
    np.testing.assert_array_equal(np.asarray(acts[0][1]), images.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(acts[-1][1]), np.asarray(model(images)))
    shapes = [a.shape for _, a in acts]
    assert shapes == [(2, 32, 32, 3), (2, 32, 32, 16), (2, 16, 16, 32), (2, 8, 8, 32),
                      (2, 8, 8, 10), (2, 10)]


def test_unknown_model_name_is_an_error_naming_the_choices():
    with pytest.raises(PixeljaxError, match="unknown model 'resnet1000'") as info:
        create_model("resnet1000")
    for name in ("allconv", "nin", "vgg16", "tiny"):
        assert name in str(info.value)
    assert set(PAPER_MODELS) <= set(model_names())


def test_split_for_inference_is_a_pure_function_equal_to_the_module():
    model = create_model("tiny")
    images = np.random.default_rng(2).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    model.train()
    model(images)  # moves the batch-norm statistics away from their initial values
    apply, params = split_for_inference(model)
    before = [np.array(x) for x in jax.tree.leaves(params)]
    expected = np.asarray(model(images))  # split_for_inference put the model in eval mode
    np.testing.assert_array_equal(np.asarray(apply(params, images)), expected)
    np.testing.assert_allclose(np.asarray(jax.jit(apply)(params, images)), expected,
                               rtol=1e-5, atol=1e-5)
    # Eval mode: one image's logits do not depend on the rest of the batch.
    np.testing.assert_allclose(np.asarray(apply(params, images[:1])), expected[:1],
                               rtol=1e-5, atol=1e-5)
    after = jax.tree.leaves(params)
    assert all(np.array_equal(b, a) for b, a in zip(before, after))


@pytest.mark.parametrize("size, kernel, stride, padding", [
    (2, (3, 3), (1, 1), "SAME"),      # VGG16's last stage
    (4, (3, 3), (1, 1), "SAME"),      # 16 outputs: the largest map done by matrix products
    (5, (3, 2), (2, 1), "SAME"),      # rectangular kernel and stride, odd size
    (6, (3, 3), (2, 2), "VALID"),
    (4, (1, 1), (1, 1), ((1, 0), (0, 2))),  # explicit, uneven padding
    (8, (3, 3), (1, 1), "SAME"),      # 64 outputs: XLA's convolution
])
def test_small_map_convolution_equals_xla_convolution(size, kernel, stride, padding):
    from jax import lax

    from pixeljax.models.layers import small_map_conv

    x = jax.random.normal(jax.random.key(0), (3, size, size + 1, 5))
    w = jax.random.normal(jax.random.key(1), (*kernel, 5, 7))
    numbers = ("NHWC", "HWIO", "NHWC")
    expected = lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=numbers)
    got = small_map_conv(x, w, stride, padding, dimension_numbers=numbers)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda w, f=f: jnp.sum(jnp.sin(f(x, w, stride, padding,
                                                       dimension_numbers=numbers))))(w)
             for f in (lax.conv_general_dilated, small_map_conv)]
    np.testing.assert_allclose(np.asarray(grads[1]), np.asarray(grads[0]), rtol=1e-4, atol=1e-4)


def test_vgg16_logits_do_not_depend_on_how_small_maps_are_convolved(monkeypatch):
    from pixeljax.models import layers

    apply, params = split_for_inference(create_model("vgg16"))
    images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    matmul = np.asarray(apply(params, images))
    monkeypatch.setattr(layers, "SMALL_MAP", 0)  # every map through XLA's convolution
    np.testing.assert_allclose(np.asarray(apply(params, images)), matmul, rtol=1e-4, atol=1e-4)
