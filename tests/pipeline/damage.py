"""Small clips encoded with PyAV, the ways files get damaged, and how to read back what a run wrote."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np


def encode(path: Path, fmt: str, codec: str, frames: int, size: tuple[int, int] = (160, 96), fps: int = 30, options: dict | None = None, gop: int = 30) -> Path:
    """A moving box on a ramp background, `frames` long, a keyframe every `gop` frames (as cameras
    write them: a damaged stretch costs up to the next one); `options` go to the muxer (e.g. movflags)."""
    w, h = size
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(frames):
            image = np.full((h, w, 3), 40 + i % 60, np.uint8)
            x = (3 * i) % (w - 40)
            image[h // 3 : h // 3 + 30, x : x + 30] = (0, 200, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def overwrite(src: Path, dst: Path, fraction: float, length: int, seed: int = 0) -> Path:
    """`length` random bytes written over the file at `fraction` of its size."""
    data = bytearray(src.read_bytes())
    at = int(len(data) * fraction)
    noise = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    data[at : at + length] = noise[: len(data) - at]
    dst.write_bytes(bytes(data))
    return dst


def join(parts: list[Path], dst: Path) -> Path:
    """`cat a b > dst`: for MPEG-TS a playable file whose timestamps restart at each part."""
    dst.write_bytes(b"".join(p.read_bytes() for p in parts))
    return dst


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def mot_frames(path: Path) -> set[int]:
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    return {int(float(r[0])) for r in rows}


def video_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))
