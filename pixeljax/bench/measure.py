"""``pixeljax bench``: the engine's throughput against the model's own, side by side.

Four measurements on the same model and images, in one run (so machine noise hits all alike):
  (a) the compiled forward pass alone, at the engine's micro-batch size (images per second);
  (b) the attack engine scoring densely: one forward pass per candidate (model evaluations per
      second, compile time excluded);
  (b') the same attacks with incremental scoring (:mod:`pixeljax.attack.incremental`: each
      candidate recomputes only the activations its pixel reaches), at its own micro-batch
      size; victims it does not support are scored densely here too, and the report says why;
  (c) a one-image-at-a-time NumPy DE that evaluates each generation's population in one model
      call, which is what the existing implementations do;
  (e) the exhaustive one-pixel sweep (:mod:`pixeljax.sweep`), candidates per second at
      the incremental engine's micro-batch, beside (b') (it has no DE work).
  (t) the threshold attack's dense engine (at ``config.threshold``), beside the same
      one-image NumPy DE running the threshold attack (c_t), as ART's ThresholdAttack does;
  (f), (g) with ``torch_logits`` (``pixeljax bench --model net.onnx --torch net.pt``): the same
      network in PyTorch, its own forward pass (f) and the one-image DE loop (c) calling it
      (g), the way the public PyTorch implementations attack; the engines on the ONNX file
      over (g) are the speed-up a PyTorch user gets.
The ratios (b)/(a) (engine overhead: 1.0 means none), (b')/(b) (incremental speed-up) and
(b)/(c) (speed-up over the usual loop) are the results, with each engine's multiply-adds per
candidate and the bytes it keeps per slot, and its achieved FLOP/s as a fraction of the
machine's own float32 matrix-multiply rate (:func:`matmul_rate`, measured in the same run in
float32 and bfloat16: the roofline). (b) and (b') run in float32 and, for NNX victims, again in
bfloat16 (float32-re-checked successes counted beside float32's), and :func:`precision_agreement`
measures on random one-pixel candidates how often the two precisions give the same class; (a)
to (c) use one device. With ``--devices 1,2,4,8``:
  (d) the engine on each device count, as ratios to one device (:func:`device_scaling`).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax._plumbing import settings
from pixeljax.attack import scoring
from pixeljax.attack.api import pixel_attack
from pixeljax.attack.encoding import encoding_of
from pixeljax.attack.mesh import local_devices
from pixeljax.attack.pipeline import clean_logits
from pixeljax.data import ImageSet
from pixeljax.de.core import MIN_POPSIZE
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import BFLOAT16, FLOAT32, PRECISIONS


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Sizes of a bench run: ``batch_size`` is the dense engine's micro-batch (and the forward
    pass's), ``incremental_batch_size`` the incremental engine's (each near its best);
    ``threshold``: the threshold attack's bound for its engine run (0: none)."""

    images: int = settings.count(8, 1, "images the engines attack (per device with --devices)")
    baseline_images: int = settings.count(2, 1, "images the one-image loops attack")
    pixels: int = settings.count(1, 1, "pixels changed per attack")
    popsize: int = settings.count(400, MIN_POPSIZE, "DE population")
    maxiter: int = settings.count(4, 0, "DE generations after the initial population")
    slots: int = settings.count(4, 1, "attacks run at once (per device with --devices)")
    batch_size: int = settings.count(400, 1, "the dense engine's and forward pass's micro-batch")
    incremental_batch_size: int = settings.count(64, 1, "the incremental engine's micro-batch")
    repeats: int = settings.count(3, 1, "timed repeats of the forward pass (the best is kept)")
    seed: int = settings.count(0, 0, "seed of the attacks")
    sweep_images: int = settings.count(2, 0, "images the sweep's run sweeps (0: no sweep run)")
    agreement_candidates: int = settings.count(
        10_000, 0, "candidates scored in bfloat16 and float32 for their agreement (0: none)")
    threshold: int = settings.count(10, 0, "the threshold engine's bound th (0: no run)")

    def __post_init__(self):
        settings.check_fields(self, "bench ")

    @classmethod
    def for_platform(cls, platform: str) -> "BenchConfig":
        """Sizes that finish in about two minutes: small on a CPU, full-scale on accelerators."""
        if platform == "cpu":
            return cls()
        return cls(images=2048, baseline_images=4, maxiter=20, slots=512, batch_size=8000,
                   incremental_batch_size=8000, repeats=10, sweep_images=256,
                   agreement_candidates=100_000)


def cpu_bfloat16_instructions() -> bool | None:
    """Whether this x86 CPU multiplies bfloat16 natively (AVX512-BF16 or AMX flags in
    /proc/cpuinfo); None where that cannot be read. Without them a CPU emulates bfloat16 and
    float32 is the faster precision."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return None
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def _best_seconds(run, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``run`` (after one untimed call): a ceiling is
    what the machine can do, and a busy moment only ever slows a call down."""
    jax.block_until_ready(run())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rate(dtype=jnp.float32, n: int = 2048, repeats: int = 5) -> float:
    """The machine's own matrix-multiply rate in FLOP/s: an n x n product as XLA runs it
    (bfloat16 inputs accumulate in float32), the ceiling an engine's FLOP/s are a fraction of."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    product = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
    return 2 * n ** 3 / _best_seconds(lambda: product(a, a), repeats)


def forward_throughput(predict, images: np.ndarray, batch_size: int, repeats: int, *,
                       forward=None) -> float:
    """(a) images per second of the compiled forward pass at ``batch_size``; ``forward``:
    another framework's forward pass instead (float32 (N, H, W, C) images to class scores),
    timed the same way."""
    batch = np.resize(images, (batch_size, *images.shape[1:])).astype(np.float32)
    if forward is None:
        compiled, batch = jax.jit(lambda p, x: p(x)), jnp.asarray(batch)
        forward = lambda x: compiled(predict, x).block_until_ready()  # noqa: E731
    forward(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        forward(batch)
    return batch_size * repeats / (time.perf_counter() - start)


def _correct(predict, data: ImageSet) -> np.ndarray:
    """Positions of the images the model classifies correctly (the only ones attacked)."""
    correct = np.flatnonzero(clean_logits(predict, data.x, 500).argmax(-1) == data.y)
    if not correct.size:
        raise PixeljaxError("the model classifies none of the images correctly: nothing to "
                            "attack")
    return correct


def engine_throughput(predict, data: ImageSet, config: BenchConfig, *, devices: int = 1,
                      warm_up_all: bool = False, dense: bool = False,
                      precision: str = FLOAT32, threshold: int | None = None
                      ) -> tuple[float, dict]:
    """(b) model evaluations per second of the attack engine on ``devices`` devices, compile
    time excluded (``warm_up_all``: warm up on all the images, so that not even the host-side
    steps whose shapes follow the image count compile in the timed run). ``dense``: score
    densely (b); otherwise incrementally where the victim allows (b'), at
    ``config.incremental_batch_size``; ``precision``: the scoring precision; ``threshold``:
    the threshold attack at this bound instead (dense: every pixel changes)."""
    attack = dict(pixels=config.pixels) if threshold is None else dict(threshold=threshold)
    dense = dense or threshold is not None
    kwargs = dict(**attack, popsize=config.popsize, maxiter=config.maxiter,
                  slots=config.slots, key=jax.random.key(0), devices=devices, dense=dense,
                  precision=precision,
                  batch_size=config.batch_size if dense else config.incremental_batch_size)
    # Only correctly classified images are attacked; the first one compiles every shape.
    correct = _correct(predict, data)
    chosen = correct[:config.images]
    # As many images as slots, so the timed run has the warm-up's shapes (slots are capped at
    # the attacks there are).
    warm = chosen if warm_up_all else correct[:max(1, min(config.slots, len(chosen)))]
    pixel_attack(predict, data.x[warm], data.y[warm], **kwargs)
    start = time.perf_counter()
    result = pixel_attack(predict, data.x[chosen], data.y[chosen], **kwargs)
    seconds = time.perf_counter() - start
    evaluations = int(result.evaluations.sum())
    return evaluations / seconds, {"evaluations": evaluations, "seconds": seconds,
                                   "attacked": int((~result.skipped).sum()),
                                   "success": int(result.success.sum()),
                                   "precision_flips": int(result.precision_flip.sum())}


def _random_candidates(images: np.ndarray, n: int, seed: int):
    """``n`` one-pixel candidates (uniform position and colour) spread over ``images``:
    (candidates (n, 2 + C), owner (n,))."""
    rng = np.random.default_rng(seed)
    h, w, c = images.shape[1:]
    genes = np.concatenate([rng.integers(0, w, (n, 1)), rng.integers(0, h, (n, 1)),
                            rng.integers(0, 256, (n, c))], 1).astype(np.float32)
    return genes, (np.arange(n) % len(images)).astype(np.int32)


def _scored(scorer, images: np.ndarray, genes: np.ndarray, owner: np.ndarray,
            batch: int) -> tuple[np.ndarray, float]:
    """Class probabilities of every candidate under ``scorer``, ``batch`` at a time (the last
    batch padded), and the candidates per second (compilation excluded)."""
    cache = jax.jit(scorer.prepare)(jnp.asarray(images, jnp.float32))
    score = jax.jit(lambda s, k, x, o: jax.nn.softmax(s.logits(k, x, o), -1))
    pad = lambda a, part: np.resize(a[part], (batch, *a.shape[1:]))  # noqa: E731
    score(scorer, cache, pad(genes, slice(0, batch)), pad(owner, slice(0, batch)))  # compile
    out, start = [], time.perf_counter()
    for first in range(0, len(genes), batch):
        part = slice(first, first + batch)
        probs = score(scorer, cache, pad(genes, part), pad(owner, part))
        out.append(np.asarray(probs)[:len(genes[part])])
    return np.concatenate(out), len(genes) / (time.perf_counter() - start)


AGREEMENT_IMAGES = 256  # images the agreement candidates are spread over


def precision_agreement(predict, data: ImageSet, candidates: int, *, batch: int = 500,
                        seed: int = 0) -> dict:
    """bfloat16 against float32 scoring on ``candidates`` random one-pixel candidates spread
    over the first :data:`AGREEMENT_IMAGES` correctly classified images (each image's clean
    activations are cached, so memory stays bounded on a whole test set): the fraction whose
    top class agrees and the largest difference of any class probability (both scored the way
    the engine scores them: incrementally where the victim allows)."""
    images = data.x[_correct(predict, data)[:AGREEMENT_IMAGES]]
    genes, owner = _random_candidates(images, candidates, seed)
    probs = {precision: _scored(scoring.scorer_for(predict, precision=precision), images,
                                genes, owner, batch)[0] for precision in PRECISIONS}
    same = probs[FLOAT32].argmax(-1) == probs[BFLOAT16].argmax(-1)
    return {"candidates": candidates, "images": len(images),
            "scoring": scoring.describe(scoring.scorer_for(predict, precision=BFLOAT16)),
            "argmax_agreement": float(same.mean()), "argmax_disagreements": int((~same).sum()),
            "max_probability_difference": float(np.abs(probs[FLOAT32] - probs[BFLOAT16]).max())}


def sweep_throughput(predict, data: ImageSet, config: BenchConfig) -> tuple[float, dict]:
    """(e) candidates per second of the sweep (corner colours) over ``config.sweep_images``
    correctly classified images, compile time excluded (a first wave compiles it)."""
    from pixeljax.sweep.api import pixel_sweep

    correct = _correct(predict, data)
    chosen = correct[:config.sweep_images]
    kwargs = dict(slots=min(config.slots, len(chosen)), batch_size=config.incremental_batch_size)
    warm = correct[:kwargs["slots"]]  # the timed run's shapes (slots capped at the images)
    pixel_sweep(predict, data.x[warm], data.y[warm], **kwargs)
    start = time.perf_counter()
    result = pixel_sweep(predict, data.x[chosen], data.y[chosen], **kwargs)
    seconds = time.perf_counter() - start
    candidates = len(result.image) * result.candidates_per_image
    return candidates / seconds, {"candidates": candidates, "seconds": seconds,
                                  "images": len(result.image),
                                  "fooled": int(result.untargeted.success.sum())}


def untrained(name: str, images: int, seed: int = 0):
    """A freshly initialised registered network (random weights: enough for speed) and
    ``images`` random images of its size, labelled with its own predictions (so all are
    attacked): ``(LoadedVictim, ImageSet)``."""
    from pixeljax.attack.validation import victim_image_shape
    from pixeljax.data import make_image_set
    from pixeljax.models import create_model, split_for_inference
    from pixeljax.victims.loaded import LoadedVictim

    model = create_model(name, seed=seed)
    apply, params = split_for_inference(model)
    victim = LoadedVictim(name=name, model=model, apply=apply, params=params,
                          metadata={"architecture": name, "note": "untrained"})
    shape = victim_image_shape(model)
    x = np.random.default_rng(seed).integers(0, 256, (images, *shape), dtype=np.uint8)
    y = clean_logits(victim.predict, x, 8).argmax(-1)
    return victim, make_image_set(x, y, source=f"random {shape} images", class_names=tuple(
        f"class {k}" for k in range(int(model.num_classes))))


def _paste_pixels(image: np.ndarray, population: np.ndarray, pixels: int) -> np.ndarray:
    """The pixel attack's candidates applied in NumPy: copies of ``image`` with each candidate's
    pixels (x, y, colour...) pasted in, coordinates truncated, colours rounded."""
    p, (h, w, _) = len(population), image.shape
    images = np.repeat(image[None].astype(np.float32), p, axis=0)
    genes, rows = population.reshape(p, pixels, -1), np.arange(p)
    for k in range(pixels):
        ys = np.clip(genes[:, k, 1].astype(int), 0, h - 1)
        xs = np.clip(genes[:, k, 0].astype(int), 0, w - 1)
        images[rows, ys, xs] = np.round(np.clip(genes[:, k, 2:], 0, 255))
    return images


def _add_changes(image: np.ndarray, population: np.ndarray, threshold: int) -> np.ndarray:
    """The threshold attack's candidates applied in NumPy: ``image`` plus each change vector
    (one value per pixel value), kept within [-th, th], rounded, clipped to [0, 255]."""
    changes = np.round(np.clip(population, -threshold, threshold))
    return np.clip(image[None].astype(np.float32) + changes.reshape(-1, *image.shape), 0, 255)


def numpy_de_throughput(predict, data: ImageSet, config: BenchConfig, *, probabilities=None,
                        threshold: int | None = None) -> float:
    """(c) model evaluations per second of a NumPy DE/rand/1 (F 0.5, no crossover) attacking one
    image at a time, each generation's population scored by one model call, as the public
    implementations run it (DebangLi/one-pixel-attack-pytorch; ART's PixelAttack and, with its
    DE, ThresholdAttack).

    ``probabilities``: the model call, float32 (N, H, W, C) pixel values to class
    probabilities (default: the compiled ``predict`` and a softmax); another framework's model
    goes here. ``threshold``: the threshold attack's loop instead, as ART's ThresholdAttack
    with ``es=1`` runs it (``es=0``, its default CMA-ES, calls the model once per candidate):
    a candidate is one value per pixel value, the population starts uniform in
    ``[-th, th]`` and each candidate image is the clean one plus its rounded change, clipped
    (ART searches the pixel values themselves within ``th`` of the clean ones: the same box).
    """
    if probabilities is None:
        compiled = jax.jit(lambda p, x: jax.nn.softmax(p(x), -1))
        probabilities = lambda x: np.asarray(compiled(predict, x))  # noqa: E731
    encoding = encoding_of(config.pixels, threshold is not None)
    rng = np.random.default_rng(config.seed)
    p, shape = config.popsize, data.x.shape[1:]

    def initial(key):
        return np.array(encoding.initial_population(key, shape, p, threshold), np.float32)

    def fitness(image, label, population):
        images = (_paste_pixels(image, population, config.pixels) if threshold is None
                  else _add_changes(image, population, threshold))
        probs = np.asarray(probabilities(images))
        return probs[:, label], probs.argmax(-1)

    fitness(data.x[0], int(data.y[0]), initial(jax.random.key(0)))  # compile
    evaluations, start = 0, time.perf_counter()
    for image, label in zip(data.x[:config.baseline_images], data.y[:config.baseline_images]):
        population = initial(jax.random.key(int(rng.integers(1 << 30))))
        fit, top = (np.array(a) for a in fitness(image, int(label), population))
        evaluations += p
        for _ in range(config.maxiter):
            if (top[fit.argmin()] != label):
                break
            r = np.stack([rng.choice(np.delete(np.arange(p), i), 3, replace=False)
                          for i in range(p)])
            children = population[r[:, 0]] + 0.5 * (population[r[:, 1]] - population[r[:, 2]])
            child_fit, child_top = fitness(image, int(label), children)
            evaluations += p
            better = child_fit < fit
            population[better], fit[better], top[better] = (children[better], child_fit[better],
                                                            child_top[better])
    return evaluations / (time.perf_counter() - start)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def device_scaling(predict, data: ImageSet, config: BenchConfig, counts) -> dict:
    """(d) the engine's throughput on each device count in ``counts``, as ratios to one device.

    Each run holds ``config.slots`` slots and ``config.images`` images per device (the images
    repeat where the data set is too small), so perfect scaling reads ``speedup == devices``.
    On a CPU the "devices" (``--xla_force_host_platform_device_count``) share the same cores:
    the numbers show that the mechanism works, not a speed-up.
    """
    counts = sorted(set(counts) | {1})
    for n in counts:
        local_devices(n)  # every count must fit before anything runs
    correct = _correct(predict, data)
    runs = []
    for n in counts:
        scaled = dataclasses.replace(config, slots=config.slots * n, images=config.images * n)
        images = data.take(correct[np.arange(scaled.images) % correct.size])
        rate, detail = engine_throughput(predict, images, scaled, devices=n, warm_up_all=True)
        runs.append({"devices": n, "evaluations_per_second": rate, **detail})
    for run in runs:
        run["speedup"] = run["evaluations_per_second"] / runs[0]["evaluations_per_second"]
        run["efficiency"] = run["speedup"] / run["devices"]
    return {"device": jax.local_devices()[0].device_kind, "platform": jax.default_backend(),
            "config": dataclasses.asdict(config), "slots": config.slots,
            "images": config.images, "runs": runs}


def _logits_program(scorer: scoring.Scorer, image_shape: tuple[int, int, int], pixels: int,
                    batch: int):
    """The jaxpr of ``scorer.logits`` on ``batch`` candidates of ``pixels`` pixels."""
    images = jax.ShapeDtypeStruct((batch, *image_shape), jnp.float32)
    cache = jax.eval_shape(scorer.prepare, images)
    candidates = jax.ShapeDtypeStruct((batch, pixels * (2 + image_shape[-1])), jnp.float32)
    return jax.make_jaxpr(lambda s, c, x: s.logits(c, x))(scorer, cache, candidates).jaxpr


def _products(jaxpr):
    """``(equation, multiply-adds)`` of each convolution and matrix product in ``jaxpr``."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...)
            per_output = int(np.prod([rhs[d] for d in spec[1:]]))
            yield eqn, int(np.prod(eqn.outvars[0].aval.shape)) * per_output
        elif eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            yield eqn, int(np.prod(eqn.outvars[0].aval.shape)) * int(
                np.prod([lhs[d] for d in contract]))
        for sub in _sub_jaxprs(eqn.params):
            yield from _products(sub)


def macs_per_candidate(scorer: scoring.Scorer, image_shape: tuple[int, int, int],
                       pixels: int = 1) -> int:
    """Multiply-adds of scoring one candidate: the convolutions and matrix products of the
    program ``logits`` compiles to, counted from their shapes."""
    return sum(macs for _, macs in _products(_logits_program(scorer, image_shape, pixels, 1)))


def products_rate(scorer: scoring.Scorer, image_shape: tuple[int, int, int], pixels: int,
                  batch: int, repeats: int = 5) -> float:
    """FLOP/s of one program made of only the convolutions and matrix products of a ``logits``
    call on ``batch`` candidates, each at its own shape on ready operands: the ceiling of an
    engine whose gathers, pastes and DE cost nothing (the square :func:`matmul_rate` is the
    machine's)."""
    found = list(_products(_logits_program(scorer, image_shape, pixels, batch)))
    operands = [[jnp.ones(v.aval.shape, v.aval.dtype) for v in eqn.invars] for eqn, _ in found]

    @jax.jit
    def products(operands):
        return [eqn.primitive.bind(*xs, **eqn.params) for (eqn, _), xs in zip(found, operands)]

    return 2 * sum(macs for _, macs in found) / _best_seconds(lambda: products(operands),
                                                              repeats)


def _sub_jaxprs(params):
    """The jaxprs nested in an equation's parameters (jit, loops, custom derivatives)."""
    for value in params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(v, "jaxpr") and hasattr(v, "consts"):  # ClosedJaxpr
                yield v.jaxpr
            elif hasattr(v, "eqns"):
                yield v


def engine_costs(predict, image_shape: tuple[int, int, int], pixels: int, *,
                 dense: bool, batch: int, precision: str = FLOAT32) -> dict:
    """How an engine scores: ``scoring`` (incremental, or dense and why), multiply-adds per
    candidate (from the layer shapes of the program it runs), cache bytes per slot, and the
    rate of its products alone at its micro-batch ``batch`` (:func:`products_rate`)."""
    scorer = scoring.scorer_for(predict, pixels=pixels, dense=dense, precision=precision)
    return {"scoring": scoring.describe(scorer),
            "macs_per_candidate": macs_per_candidate(scorer, image_shape, pixels),
            "cache_bytes_per_slot": scoring.cache_bytes_per_slot(scorer, image_shape),
            "products_flops_per_second": products_rate(scorer, image_shape, pixels, batch)}


def _lowers(predict) -> bool:
    """Whether ``predict`` can be scored in bfloat16 (an NNX network)."""
    return scoring.victim_module(predict) is not None


def run_bench(predict, data: ImageSet, config: BenchConfig, *, torch_logits=None) -> dict:
    """Every measurement of the module docstring on ``predict`` and ``data``, in one run, as
    the ``pixeljax bench --json`` report. ``torch_logits``: the same network in PyTorch, float32
    (N, H, W, C) pixel values to logits (:func:`pixeljax.bench.torch_model.load_torch_model`):
    adds (f) its own forward pass and (g) the one-image DE loop calling it."""
    ceiling = {"float32": matmul_rate(jnp.float32), "bfloat16": matmul_rate(jnp.bfloat16)}
    forward = forward_throughput(predict, data.x[:config.batch_size], config.batch_size,
                                 config.repeats)
    engines = {}
    precisions = PRECISIONS if _lowers(predict) else (FLOAT32,)
    for precision in precisions:
        for kind, dense in (("dense", True), ("incremental", False)):
            batch = config.batch_size if dense else config.incremental_batch_size
            name = kind if precision == FLOAT32 else f"{kind} {precision}"
            rate, detail = engine_throughput(predict, data, config, dense=dense,
                                             precision=precision)
            e = engines[name] = {
                "evaluations_per_second": rate, "precision": precision,
                "batch_size": batch,
                **engine_costs(predict, data.x.shape[1:], config.pixels, dense=dense,
                               batch=batch, precision=precision),
                "run": detail}
            e["flops_per_second"] = 2 * e["macs_per_candidate"] * rate
            e["fraction_of_matmul_float32"] = e["flops_per_second"] / ceiling["float32"]
            e["fraction_of_matmul"] = e["flops_per_second"] / ceiling[precision]
            e["fraction_of_products"] = e["flops_per_second"] / e["products_flops_per_second"]
    if config.threshold:
        rate, detail = engine_throughput(predict, data, config, threshold=config.threshold)
        e = engines["threshold"] = {
            "evaluations_per_second": rate, "precision": FLOAT32, "threshold": config.threshold,
            "batch_size": config.batch_size,
            **engine_costs(predict, data.x.shape[1:], config.pixels, dense=True,
                           batch=config.batch_size),
            "run": detail}
        e["scoring"] = "dense (a threshold attack changes every pixel)"
        e["flops_per_second"] = 2 * e["macs_per_candidate"] * rate
        e["fraction_of_matmul_float32"] = e["fraction_of_matmul"] = (
            e["flops_per_second"] / ceiling["float32"])
        e["fraction_of_products"] = e["flops_per_second"] / e["products_flops_per_second"]
    baseline = numpy_de_throughput(predict, data, config)
    threshold_loop = (numpy_de_throughput(predict, data, config, threshold=config.threshold)
                      if config.threshold else None)
    torch_forward = torch_de = None
    if torch_logits is not None:
        torch_forward = forward_throughput(None, data.x[:config.batch_size], config.batch_size,
                                           config.repeats, forward=torch_logits)
        torch_de = numpy_de_throughput(None, data, config, probabilities=lambda x: _softmax(
            torch_logits(x)))
    sweep, sweep_run = (sweep_throughput(predict, data, config) if config.sweep_images
                        else (None, {"images": 0, "candidates": 0}))
    engine = engines["dense"]["evaluations_per_second"]
    incremental = engines["incremental"]["evaluations_per_second"]
    low = {kind: engines[f"{kind} {BFLOAT16}"]["evaluations_per_second"]
           / engines[kind]["evaluations_per_second"]
           for kind in ("dense", "incremental") if f"{kind} {BFLOAT16}" in engines}
    agreement = (precision_agreement(predict, data, config.agreement_candidates,
                                     seed=config.seed)
                 if config.agreement_candidates and len(precisions) > 1 else None)
    return {"device": jax.devices()[0].device_kind, "platform": jax.default_backend(),
            "config": dataclasses.asdict(config),
            "forward_images_per_second": forward,
            "engine_evaluations_per_second": engine,
            "incremental_evaluations_per_second": incremental,
            "numpy_de_evaluations_per_second": baseline,
            "engine_over_forward": engine / forward,
            "incremental_over_dense": incremental / engine,
            "incremental_macs_fraction": (engines["incremental"]["macs_per_candidate"]
                                          / engines["dense"]["macs_per_candidate"]),
            "engine_over_numpy_de": engine / baseline, "engine_run": engines["dense"]["run"],
            "sweep_candidates_per_second": sweep,
            "sweep_over_incremental": None if sweep is None else sweep / incremental,
            "sweep_run": sweep_run, "matmul_flops_per_second": ceiling, "engines": engines,
            "threshold_over_dense": (engines["threshold"]["evaluations_per_second"] / engine
                                     if "threshold" in engines else None),
            "numpy_threshold_evaluations_per_second": threshold_loop,
            "threshold_over_numpy_threshold": (
                None if threshold_loop is None
                else engines["threshold"]["evaluations_per_second"] / threshold_loop),
            "torch_forward_images_per_second": torch_forward,
            "torch_de_evaluations_per_second": torch_de,
            "forward_over_torch_forward": None if torch_forward is None else forward / torch_forward,
            "engine_over_torch_de": None if torch_de is None else {
                kind: engines[kind]["evaluations_per_second"] / torch_de
                for kind in ("dense", "incremental")},
            "bfloat16_over_float32": low, "precision_agreement": agreement,
            "cores": os.cpu_count(),
            "cpu_bfloat16_instructions": (cpu_bfloat16_instructions()
                                          if jax.default_backend() == "cpu" else None)}
