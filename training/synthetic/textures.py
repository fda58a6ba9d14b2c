"""Procedural textures and colours for the synthetic scenes.

Every object part and background region is filled with a texture drawn from
the same bank, independent of the object's class: a detector has to tell a
car from a truck by its shape, not by its colour or pattern.
"""

from __future__ import annotations

import cv2
import numpy as np

TEXTURE_SIZE = 64


def random_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.2, 1.0), val: tuple[float, float] = (0.25, 1.0)) -> np.ndarray:
    """A BGR colour in [0, 255] (float32) from a random hue."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], float32[H,W]: a `cells`-wide random grid upsampled."""
    cells = max(2, cells)
    grid = rng.random((cells, max(2, int(round(cells * width / max(height, 1))))), dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def _two_colour(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a[None, None, :] * (1.0 - t[..., None]) + b[None, None, :] * t[..., None]


def random_texture(rng: np.random.Generator, size: int = TEXTURE_SIZE, base: np.ndarray | None = None) -> np.ndarray:
    """A float32[size,size,3] BGR texture of a random kind.

    Kinds: noisy solid, stripes at a random angle and period, checker,
    gradient, camouflage blobs. ``base`` fixes the main colour.
    """
    a = random_colour(rng) if base is None else base.astype(np.float32)
    b = random_colour(rng)
    kind = rng.integers(0, 5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 0:  # solid with fine grain
        tex = np.broadcast_to(a, (size, size, 3)).copy()
        tex += rng.normal(0.0, rng.uniform(4, 18), (size, size, 1)).astype(np.float32)
    elif kind == 1:  # stripes
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5, 20)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        t = (np.sin(2 * np.pi * phase) > rng.uniform(-0.5, 0.5)).astype(np.float32)
        tex = _two_colour(a, b, t)
    elif kind == 2:  # checker
        period = int(rng.integers(4, 16))
        t = (((xx // period) + (yy // period)) % 2).astype(np.float32)
        tex = _two_colour(a, b, t)
    elif kind == 3:  # gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(angle) + yy * np.sin(angle)) / size
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        tex = _two_colour(a, b, t)
    else:  # camouflage
        t = (smooth_noise(rng, size, size, int(rng.integers(3, 8))) > 0.5).astype(np.float32)
        tex = _two_colour(a, b, t)
    return np.clip(tex, 0, 255).astype(np.float32)


def ground_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Grass, sand, dirt or gravel: a base colour with two scales of noise."""
    base = random_colour(rng, sat=(0.15, 0.7), val=(0.3, 0.8))
    coarse = smooth_noise(rng, height, width, int(rng.integers(4, 12)))[..., None]
    fine = rng.normal(0.0, rng.uniform(6, 20), (height, width, 1)).astype(np.float32)
    tint = random_colour(rng, sat=(0.1, 0.5), val=(0.2, 0.7))
    tex = base * (0.7 + 0.6 * coarse) * 0.7 + tint * 0.3 * (1.0 - coarse) + fine
    return np.clip(tex, 0, 255).astype(np.float32)


def sky_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A vertical gradient between two sky colours with soft clouds."""
    top = random_colour(rng, sat=(0.2, 0.8), val=(0.4, 1.0))
    bottom = random_colour(rng, sat=(0.0, 0.5), val=(0.6, 1.0))
    t = np.linspace(0.0, 1.0, max(height, 1), dtype=np.float32)[:, None, None]
    sky = top * (1.0 - t) + bottom * t
    sky = np.broadcast_to(sky, (height, width, 3)).copy()
    clouds = smooth_noise(rng, height, width, int(rng.integers(3, 9)))
    clouds = np.clip((clouds - rng.uniform(0.4, 0.7)) * 3.0, 0.0, 1.0)[..., None]
    return np.clip(sky * (1.0 - clouds) + 235.0 * clouds, 0, 255).astype(np.float32)


def fill_from_texture(texture: np.ndarray, height: int, width: int) -> np.ndarray:
    """The texture stretched to (height, width)."""
    return cv2.resize(texture, (max(width, 1), max(height, 1)), interpolation=cv2.INTER_LINEAR)
