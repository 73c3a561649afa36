"""Input defences: pure functions in front of a victim, so that an attack sees the whole defended
pipeline (a black-box attack on it is adaptive by construction).

A defence is named by one string, its parts applied left to right and joined by ``+``:

* ``median<k>``: a k x k median filter per channel (spatial smoothing; k odd, >= 3);
* ``gauss<k>``: k x k Gaussian smoothing per channel, sigma as OpenCV picks it for k
  (``0.3 * ((k - 1) / 2 - 1) + 0.8``; k odd, >= 3);
* ``bits<b>``: bit-depth reduction to b bits per channel (feature squeezing, Xu, Evans and Qi,
  NDSS 2018; b from 1 to 7);
* ``noise<s>`` (or ``noise<s>x<n>``): Gaussian noise of standard deviation s pixel levels (1 to
  255) added at inference, the result clipped to [0, 255]; a randomised defence, scored by
  expectation over transformation: the victim's class probabilities averaged over n draws
  (default 8). The draws are a fixed function of the image (its pixels hashed), so a candidate
  always gets the same score and results are reproducible. The search may fit those few fixed
  draws; the deployed defence draws fresh noise at every query, so every finished attack is
  judged again on :data:`VERDICT_DRAWS` fresh draws (another key): its reported class,
  confidence and success are those of the class probabilities expected over fresh noise
  (``precision_flip`` marks a success the fixed draws saw and fresh ones reverse). At most one
  noise part.

Filters mirror the image at its borders (SciPy's ``reflect``, as ART's spatial smoothing).
A victim of the project's layers takes its defences as its own first steps
(``SequentialVictim.defences``), so it is still scored incrementally (a filter is a local step
with mirrored borders, bit-depth reduction a per-pixel one; :mod:`pixeljax.attack.cone`); any
other model, and any defence with a noise part, is wrapped (:class:`Defended`) and scored
densely. Results folders record the
defence (``config.json``), so a resume or an analysis uses the same pipeline.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pixeljax.errors import PixeljaxError
from pixeljax.models import Forward, SequentialVictim, split_for_inference

KINDS = ("median", "gauss", "bits", "noise")
KNOWN = ("median<k> and gauss<k> (k odd, >= 3), bits<b> (b from 1 to 7), noise<s> or "
         "noise<s>x<n> (s from 1 to 255, n draws), joined by +")
EOT_DRAWS = 8  # draws of a noise defence, unless its name says otherwise
MAX_DRAWS = 256
VERDICT_DRAWS = 256  # fresh draws that judge every finished attack on a noise defence


@dataclasses.dataclass(frozen=True)
class Defence:
    """One part of a defence: ``kind`` (see :data:`KINDS`) and its number (filter size, bits or
    noise level), and for noise its number of draws."""

    kind: str
    size: int
    draws: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}{self.size}" + (f"x{self.draws}" if self.randomised else "")

    @property
    def randomised(self) -> bool:
        return self.kind == "noise"

    def __call__(self, images: jax.Array, keys: jax.Array | None = None) -> jax.Array:
        """(N, H, W, C) pixel values -> the same, defended (float32); a noise defence draws its
        noise from ``keys`` (N,), one per image."""
        x = jnp.asarray(images, jnp.float32)
        if self.randomised:
            noise = jax.vmap(lambda k: jax.random.normal(k, x.shape[1:]))(keys)
            return jnp.clip(x + self.size * noise, 0.0, 255.0)
        if self.kind == "bits":
            levels = 2 ** self.size - 1
            return jnp.round(x / 255.0 * levels) * (255.0 / levels)
        return self._filter(_neighbourhood(x, self.size))

    def valid(self, patch: jax.Array) -> jax.Array:
        """A filter on a patch (N, h, w, C) without padding: (N, h - k + 1, w - k + 1, C), as
        incremental scoring recomputes a window (a per-pixel defence keeps the shape)."""
        x = jnp.asarray(patch, jnp.float32)
        if self.kind == "bits":
            return self(x)
        return self._filter(_neighbourhood(x, self.size, pad=False))

    @property
    def local(self) -> bool:
        """A filter over a k x k neighbourhood (else a per-pixel defence)."""
        return self.kind != "bits"

    def _filter(self, views: jax.Array) -> jax.Array:
        """The filter over the stacked neighbours (k * k, N, H, W, C)."""
        if self.kind == "median":
            return jnp.median(views, axis=0)
        weights = gaussian_weights(self.size)                     # (k * k,)
        return jnp.tensordot(weights, views, axes=1)


def gaussian_weights(k: int) -> np.ndarray:
    """The k x k Gaussian kernel, flattened row by row, summing to 1."""
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8
    g = np.exp(-((np.arange(k) - (k - 1) / 2) ** 2) / (2 * sigma ** 2))
    return (np.outer(g, g) / np.outer(g, g).sum()).reshape(-1).astype(np.float32)


def _neighbourhood(x: jax.Array, k: int, *, pad: bool = True) -> jax.Array:
    """The k x k neighbours of every pixel, the image mirrored at its borders (``pad``), or of
    every pixel at least k // 2 from them."""
    r = k // 2
    padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric") if pad else x
    h, w = padded.shape[1] - 2 * r, padded.shape[2] - 2 * r
    return jnp.stack([padded[:, i:i + h, j:j + w] for i in range(k) for j in range(k)])


def parse_defences(text: str, image_shape=None) -> tuple[Defence, ...]:
    """The parts of a defence string such as ``"bits5+median3"``; with ``image_shape``
    (H, W, C), filters must fit in the image.

    Raises:
      PixeljaxError: an unknown part (the known ones are listed), an even, zero or too large
        filter size, or bits outside 1 to 7.
    """
    if not isinstance(text, str) or not text.strip():
        raise PixeljaxError(f"--defence: expected {KNOWN}, got {text!r}")
    parts = []
    for part in text.split("+"):
        if not part.strip():
            raise PixeljaxError(f"--defence {text!r}: an empty part; expected {KNOWN}")
        found = re.fullmatch(r"([a-z]+)(0|[1-9][0-9]*)(?:x(0|[1-9][0-9]*))?", part.strip())
        if not found or found[1] not in KINDS or (found[3] and found[1] != "noise"):
            raise PixeljaxError(f"--defence: unknown defence {part.strip()!r}; known: {KNOWN}")
        kind, size = found[1], int(found[2])
        if kind == "bits" and not 1 <= size <= 7:
            raise PixeljaxError(f"--defence {part}: bits must be from 1 to 7, got {size}")
        if kind == "noise":
            draws = int(found[3]) if found[3] else EOT_DRAWS
            if not 1 <= size <= 255:
                raise PixeljaxError(f"--defence {part}: the noise level must be from 1 to 255 "
                                    f"pixel levels, got {size}")
            if not 1 <= draws <= MAX_DRAWS:
                raise PixeljaxError(f"--defence {part}: the draws must be from 1 to "
                                    f"{MAX_DRAWS}, got {draws}")
            if any(p.randomised for p in parts):
                raise PixeljaxError(f"--defence {text!r}: at most one noise part")
            parts.append(Defence(kind, size, draws))
            continue
        if kind != "bits":
            if size < 3 or size % 2 == 0:
                raise PixeljaxError(f"--defence {part}: the filter size must be odd and >= 3, "
                                    f"got {size}")
            if image_shape is not None and size > min(image_shape[:2]):
                raise PixeljaxError(f"--defence {part}: a {size} x {size} filter is larger "
                                    f"than the {image_shape[0]} x {image_shape[1]} images")
        parts.append(Defence(kind, size))
    return tuple(parts)


def defence_name(defences: tuple[Defence, ...]) -> str:
    """The canonical string of ``defences`` (as results record it)."""
    return "+".join(d.name for d in defences)


class Defended:
    """``apply(params, images)`` of a victim behind ``defences``; hashable, so jit reuses its
    programs across loads of one victim. Behind a noise defence it returns the log of the class
    probabilities averaged over the draws (valid logits)."""

    def __init__(self, apply, defences: tuple[Defence, ...], *, seed: int = None,
                 draws: int | None = None):
        self.apply, self.defences = apply, defences
        self.seed = _HASH_SEED if seed is None else seed
        self._draws = draws

    @property
    def draws(self) -> int:
        """Draws per image (0: a deterministic defence)."""
        if self._draws is not None:
            return self._draws
        return max((d.draws for d in self.defences if d.randomised), default=0)

    def verdict(self) -> Defended | None:
        """Behind a randomised defence, the pipeline that judges a finished attack as the
        deployed defence would: probabilities expected over :data:`VERDICT_DRAWS` fresh draws,
        of a key the search never used (None for a deterministic defence)."""
        if not self.draws:
            return None
        return Defended(self.apply, self.defences, seed=_VERDICT_SEED, draws=VERDICT_DRAWS)

    def _through(self, images, keys):
        for defence in self.defences:
            images = defence(images, keys)
        return images

    def __call__(self, params, images):
        if not self.draws:
            return self.apply(params, self._through(images, None))
        keys = image_keys(images, self.seed)

        def draw(d):
            keyed = jax.vmap(lambda k: jax.random.fold_in(k, d))(keys)
            logits = jnp.asarray(self.apply(params, self._through(images, keyed)), jnp.float32)
            return jax.nn.log_softmax(logits, axis=-1)

        logs = jax.lax.map(draw, jnp.arange(self.draws))             # (draws, N, K)
        return jax.nn.logsumexp(logs, axis=0) - jnp.log(float(self.draws))

    def describe(self) -> str:
        """How this pipeline is scored, for run summaries."""
        name = defence_name(self.defences)
        if not self.draws:
            return f"behind {name}, which this model's network cannot take as its own steps"
        return (f"behind {name}, a randomised defence: each candidate scored by its class "
                f"probabilities averaged over {self.draws} draws of the noise; every finished "
                f"attack judged by those expected over {VERDICT_DRAWS} fresh draws")

    def _identity(self):
        return self.apply, self.defences, self.seed, self.draws

    def __hash__(self):
        return hash(self._identity())

    def __eq__(self, other):
        return isinstance(other, Defended) and self._identity() == other._identity()


_HASH_SEED = 20260101  # the fixed weights of the image hash that seeds a noise defence
_VERDICT_SEED = 20261207  # the key of the fresh draws that judge finished attacks


def image_keys(images: jax.Array, seed: int = _HASH_SEED) -> jax.Array:
    """(N,) PRNG keys, each a fixed function of its image's pixel values (as integers) and
    ``seed``: the same image always draws the same noise, whatever batch it is scored in."""
    ints = jnp.asarray(images).reshape(images.shape[0], -1).astype(jnp.uint32)
    weights = np.random.default_rng(_HASH_SEED).integers(
        1, 2 ** 32, ints.shape[1], dtype=np.uint64).astype(np.uint32)
    hashed = jnp.sum(ints * jnp.asarray(weights), axis=1, dtype=jnp.uint32)  # modulo 2^32
    return jax.vmap(lambda h: jax.random.fold_in(jax.random.key(seed), h))(hashed)


def defended(victim, text: str | None, image_shape=None):
    """``victim`` (a :class:`~pixeljax.victims.loaded.LoadedVictim`) behind the defence ``text``
    (None: ``victim`` itself)."""
    if text is None:
        return victim
    defences = parse_defences(text, image_shape)
    randomised = any(d.randomised for d in defences)
    if (isinstance(victim.apply, Forward) and isinstance(victim.model, SequentialVictim)
            and not randomised):
        # One network with the defences in front: scored incrementally, lowered to bfloat16.
        model = nnx.merge(*nnx.split(victim.model))
        model.defences = tuple(model.defences) + defences
        apply, params = split_for_inference(model)
        return dataclasses.replace(victim, model=model, apply=apply, params=params)
    return dataclasses.replace(victim, apply=Defended(victim.apply, defences))


def judged(victim):
    """``victim`` as results are judged: behind a randomised defence, on fresh draws (see
    :meth:`Defended.verdict`); any other victim itself. Analyses of a results folder score
    through it, so they see what the run reported."""
    verdict = getattr(victim.apply, "verdict", None)
    judge = verdict() if verdict is not None else None
    return victim if judge is None else dataclasses.replace(victim, apply=judge)


__all__ = ["Defence", "Defended", "EOT_DRAWS", "KINDS", "VERDICT_DRAWS", "defence_name",
           "defended", "judged",
           "gaussian_weights", "image_keys", "parse_defences"]
