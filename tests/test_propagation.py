"""Propagation maps (Vargas & Su, arXiv 1902.02947): per-layer |F(x) - F(x')| relative to the
clean layer's maximum, on the tiny model, on hand-written models and on every registered victim.
"""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _analysis_support import shared_results
from flax import nnx

from pixeljax.analysis import (
    aligned_average,
    as_activations,
    batch_propagation_maps,
    draw_maps,
    layer_maps,
    layer_names,
    load_attacks,
    propagation_maps,
    run_propagation,
)
from pixeljax.analysis.propagation import PropagationMaps
from pixeljax.attack.perturb import apply_candidates
from pixeljax.cli import main
from pixeljax.data import load_sample
from pixeljax.errors import PixeljaxError
from pixeljax.models import create_model, model_names
from pixeljax.runs.results import ResultsWriter, check_config, perturbation, read_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny():
    return create_model("tiny", seed=0)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return shared_results(tmp_path_factory)


def test_an_unperturbed_image_has_a_zero_map_in_every_layer(tiny, image):
    x, y = 9, 20
    same_colour = np.array([x, y, *image[y, x]], np.float32)  # writes the pixel it finds
    for change in (same_colour, image):  # a candidate, or the adversarial image itself
        maps = propagation_maps(tiny, image, change)
        assert all(np.all(m == 0) for m in maps.mean + maps.max)
        assert all(s["changed_fraction"] == 0 for s in maps.statistics())


@pytest.mark.parametrize("x, y", [(13, 7), (0, 0), (31, 16)])
def test_the_first_convolution_changes_only_inside_the_pixels_3x3_neighbourhood(tiny, image,
                                                                               x, y):
    colour = 255 - image[y, x]  # as far from the original as possible in every channel
    maps = propagation_maps(tiny, image, np.array([x, y, *colour], np.float32))
    layers = dict(zip(maps.names, maps.max))
    changed_input = np.argwhere(layers["input"] > 0)
    np.testing.assert_array_equal(changed_input, [[y, x]])
    changed = np.argwhere(layers["conv1"] > 0)  # tiny's conv1 is 3x3, stride 1
    assert len(changed) > 0
    assert np.all(np.abs(changed - [y, x]).max(-1) <= 1)


def test_layers_come_in_the_models_order_with_its_spatial_shapes(tiny, image):
    maps = propagation_maps(tiny, image, np.array([4, 4, 0, 0, 0], np.float32))
    activations = tiny.activations(jnp.asarray(image[None]))
    assert maps.names == ("input",) + tiny.layer_names == tuple(n for n, _ in activations)
    expected = [a.shape[1:3] if a.ndim == 4 else (1, 1) for _, a in activations]
    assert [m.shape for m in maps.mean] == [m.shape for m in maps.max] == expected
    assert expected == [(32, 32), (32, 32), (16, 16), (8, 8), (8, 8), (1, 1)]


def test_maps_are_the_channel_mean_and_max_relative_to_the_clean_layers_maximum(tiny, image):
    x, y, colour = 5, 6, np.array([0, 128, 255], np.float32)
    maps = propagation_maps(tiny, image, np.array([x, y, *colour]))
    diff = np.abs(colour - image[y, x].astype(np.float32))
    scale = image.max()
    assert maps.mean[0][y, x] == pytest.approx(diff.mean() / scale, rel=1e-6)
    assert maps.max[0][y, x] == pytest.approx(diff.max() / scale, rel=1e-6)
    clean = dict(tiny.activations(jnp.asarray(image[None], jnp.float32)))["conv2"]
    adversarial = dict(tiny.activations(
        jnp.asarray(image[None], jnp.float32).at[0, y, x].set(colour)))["conv2"]
    expected = np.abs(np.asarray(adversarial - clean))[0].max(-1) / np.abs(clean).max()
    np.testing.assert_allclose(maps.max[2], expected, rtol=1e-5, atol=1e-7)


def test_any_callable_exposing_its_intermediates_works(image):
    def activations(images):  # a hand-written model: a feature map, its double, a vector
        x = jnp.asarray(images, jnp.float32)
        return [("pixels", x), ("double", 2 * x), ("vector", x.sum(axis=(1, 2)))]

    maps = propagation_maps(activations, image, np.array([3, 8, 255, 255, 255], np.float32))
    assert maps.names == ("pixels", "double", "vector")
    np.testing.assert_allclose(maps.max[1], maps.max[0], rtol=1e-6)  # relative: scale cancels
    assert maps.mean[2].shape == (1, 1)  # a vector layer is one position
    assert maps.statistics()[2]["changed_fraction"] == 1.0


def test_a_bound_activations_method_gives_the_same_maps_as_the_module(tiny, image):
    candidate = np.array([17, 2, 255, 0, 0], np.float32)
    from_module = propagation_maps(tiny, image, candidate)
    from_method = propagation_maps(tiny.activations, image, candidate)
    assert from_method.names == from_module.names
    for a, b in zip(from_method.max, from_module.max):
        np.testing.assert_array_equal(a, b)


def test_padded_batches_give_the_same_maps_as_single_attacks(tiny):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    candidates = np.concatenate([rng.integers(0, 32, (5, 2)), rng.integers(0, 256, (5, 3))],
                                axis=1).astype(np.float32)
    batch = batch_propagation_maps(tiny, images, candidates, batch_size=3)  # 3 + 2 (padded)
    assert len(batch) == 5
    single = propagation_maps(tiny, images[4], candidates[4])
    for a, b in zip(batch.attack(4).max, single.max):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_the_average_map_is_aligned_on_the_attacked_pixel():
    maps = np.zeros((2, 4, 4))
    maps[0, 1, 2] = 1.0  # each map is hot exactly at its own attacked pixel
    maps[1, 3, 0] = 0.5
    average = aligned_average(maps, np.array([[1, 2], [3, 0]]), (4, 4))
    assert average.shape == (7, 7)
    assert average[3, 3] == pytest.approx(0.75)  # the centre holds the attacked pixel
    assert np.nanmax(np.delete(average.ravel(), 3 * 7 + 3)) == 0.0
    assert np.isnan(average[0, 0]) and np.isnan(average[6, 6])  # covered by no map


def test_the_average_map_rescales_the_pixel_to_coarser_layers():
    maps = np.zeros((1, 8, 8))
    maps[0, 2, 7] = 1.0  # input pixel (row 9, col 31) lies at (2, 7) of an 8x8 layer
    average = aligned_average(maps, np.array([[9, 31]]), (32, 32))
    assert average[7, 7] == 1.0


@pytest.mark.parametrize("name", model_names())
def test_every_registered_victim_has_a_map_per_layer(name):
    abstract = nnx.eval_shape(lambda: create_model(name))  # nothing is allocated or run
    activations = as_activations(abstract)
    names = layer_names(activations, (32, 32, 3))
    assert names == ("input",) + abstract.layer_names
    images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.uint8)
    shapes = jax.eval_shape(layer_maps, activations, images, images)
    assert len(shapes) == len(names)
    assert shapes[0][0].shape == (2, 32, 32) and shapes[-1][1].shape == (2, 1, 1)


def test_figures_render_to_png(tiny, image, tmp_path):
    maps = propagation_maps(tiny, image, np.array([10, 10, 255, 0, 0], np.float32))
    path = draw_maps(maps, tmp_path / "one.png", title="one attack",
                     markers=[(10 * m.shape[0] // 32, 10 * m.shape[1] // 32) for m in maps.max])
    average = PropagationMaps(maps.names, tuple(np.full((3, 3), np.nan) for _ in maps.names),
                              maps.max)  # blank (NaN) panels must draw too
    second = draw_maps(average, tmp_path / "nan.png")
    for p in (path, second):
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 1000


def test_a_results_folder_loads_its_finished_attacks(results):
    attacks = load_attacks(results.directory)
    finished = [r for r in results.rows if r["status"] != "skipped"]
    assert len(attacks) == len(finished)
    np.testing.assert_array_equal(attacks.found.attack_id, [r["attack_id"] for r in finished])
    np.testing.assert_array_equal(attacks.images, results.images[[r["image_index"]
                                                                    for r in finished]])
    assert load_attacks(results.directory, limit=3).found.attack_id.tolist() == [0, 1, 2]


def test_the_shipped_sample_is_matched_on_its_test_split_index(results, tmp_path):
    sample = load_sample()
    position = int(np.argmax(sample.index != np.arange(len(sample))))  # index != position
    directory = tmp_path / "on-sample"
    check_config(directory, {**read_config(results.directory), "data": "sample"})
    row = {**results.rows[0], "image_index": int(sample.index[position]),
           "label": int(sample.y[position])}
    # What the victim makes of this candidate on this image (the analyses re-score it).
    adversarial = apply_candidates(sample.x[position:position + 1],
                                   perturbation(row, 1)[None]).astype(np.float32)
    probs = np.asarray(jax.nn.softmax(results.victim.predict(adversarial)))[0]
    row["true_prob_after"] = float(probs[row["label"]])
    with ResultsWriter(directory, pixels=1) as writer:
        writer.write([row])
    attacks = load_attacks(directory)
    np.testing.assert_array_equal(attacks.images[0], sample.x[position])


def test_the_command_writes_one_figure_per_attack_an_average_and_tables(results, tmp_path,
                                                                        capsys):
    out = tmp_path / "prop"
    assert main(["propagation", "--results", str(results.directory), "--limit", "3",
                 "--out", str(out)]) == 0
    assert "tiny: propagation maps of 3 attacks (2 successful) over 6 layers" in \
        capsys.readouterr().out
    figures = sorted(p.name for p in (out / "propagation").iterdir())
    assert figures == ["attack_000000.png", "attack_000001.png", "attack_000002.png"]
    assert (out / "propagation_average.png").read_bytes()[:8] == PNG_MAGIC
    with open(out / "propagation_layers.csv") as f:
        layers = list(csv.DictReader(f))
    names = ["input", "conv1", "conv2", "conv3", "conv4", "logits"]
    for group in ("all", "successful"):
        rows = [r for r in layers if r["group"] == group]
        assert [r["layer"] for r in rows] == names
        assert all(0 <= float(r["changed_fraction"]) <= 1 for r in rows)
        assert all(float(r["mean_rel_diff"]) <= float(r["max_rel_diff"])
                   <= float(r["peak_rel_diff"]) for r in rows)
    successful = {r["layer"]: r for r in layers if r["group"] == "successful"}
    assert float(successful["input"]["changed_fraction"]) == pytest.approx(1 / 1024)
    assert float(successful["logits"]["changed_fraction"]) == 1.0  # the class changed
    with open(out / "propagation_attacks.csv") as f:
        assert len(list(csv.DictReader(f))) == 3 * len(names)


def test_a_missing_results_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(PixeljaxError, match="does not exist"):
        run_propagation(tmp_path / "nowhere", tmp_path / "out")
    assert main(["propagation", "--results", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(PixeljaxError, match="not an attack results folder"):
        load_attacks(tmp_path)


def test_results_of_another_model_are_refused(results, tmp_path, capsys):
    with pytest.raises(PixeljaxError, match="holds attacks on 'tiny', not on 'resnet20'"):
        run_propagation(results.directory, tmp_path, model="resnet20")
    assert main(["propagation", "--results", str(results.directory), "--model", "nin",
                 "--out", str(tmp_path)]) == 2
    assert "not on 'nin'" in capsys.readouterr().err


def test_a_non_positive_limit_is_refused(results, tmp_path):
    with pytest.raises(PixeljaxError, match="limit"):
        run_propagation(results.directory, tmp_path, limit=0)


def test_perturbations_of_the_wrong_shape_are_refused(tiny, image):
    with pytest.raises(PixeljaxError, match="perturbations must be"):
        propagation_maps(tiny, image, np.zeros(4, np.float32))
    with pytest.raises(PixeljaxError, match="image must be"):
        propagation_maps(tiny, image[0], np.zeros(5, np.float32))


def test_a_module_without_activations_is_refused(image):
    linear = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    with pytest.raises(PixeljaxError, match="exposes no activations"):
        propagation_maps(linear, image, np.zeros(5, np.float32))
