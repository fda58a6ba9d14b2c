"""Typed run configuration: frozen dataclasses, loaded from YAML or TOML, overridable from the CLI.

An unknown key is an error naming its dotted path (`tracker.hgh_score`), so
a typo never silently falls back to a default.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.postprocess import PostprocessConfig
from pipeline.batcher import BatchConfig
from pipeline.draw import DrawConfig
from pipeline.events.factory import EventDelivery
from pipeline.sinks.clips import ClipConfig
from pipeline.sources.base import SourceConfig
from pipeline.sources.uri import classify, redact
from pipeline.config_files import apply_override, config_from_dict, load_config_file  # noqa: F401 (re-exported for callers of pipeline.config)
from pipeline.errors import TridentError
from trackers.config import TrackerConfig


@dataclass(frozen=True)
class EngineConfig:
    model: str = ""  # .onnx (ONNX Runtime), .engine/.plan (TensorRT) or .pt (torch reference)
    device: str = "auto"  # auto | cpu | cuda | tensorrt (ONNX Runtime's TensorRT EP)
    threads: int = 0  # CPU engine intra-op threads per batch; 0 = auto (pipeline/engine_choice.py says why)
    concurrent: int = 0  # batches in the engine at once (ONNX Runtime or OpenVINO on the CPU); 0 = auto: 2 on 2+ cores

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise TridentError(f"engine.threads must be >= 0 (0 = auto), got {self.threads}")
        if self.concurrent < 0:
            raise TridentError(f"engine.concurrent must be >= 0 (0 = auto), got {self.concurrent}")


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "runs/trident"
    video: bool = True  # annotated MP4 per stream
    mot: bool = True  # MOTChallenge tracks per stream
    jsonl: bool = True  # JSON Lines per stream: boxes, classes, track ids, RLE masks
    jsonl_masks: bool = True  # RLE masks in the JSON Lines (large on crowded scenes)
    images_every: int = 0  # also dump every N-th annotated frame as JPEG (0 = off)
    show: bool = False  # live window (needs the GUI build of OpenCV)
    video_fps: float = 0.0  # 0 = the file's rate, or 15 for live sources
    # x264 speed/size trade (pipeline/sinks/video.py): at crf 23 on a 768x576 frame ultrafast costs
    # 3.5 ms and 15 KB, superfast 5.0 ms and 11 KB, veryfast 6.4 ms and 8.5 KB (end to end on vtest.avi
    # on 2 cores: 36.9 FPS ultrafast vs 32.3 superfast); the annotated video is the by-product here
    video_preset: str = "ultrafast"
    video_crf: int = 23  # quality: lower is better and larger (18 ~ visually lossless, 28 small)

    def __post_init__(self) -> None:
        from pipeline.sinks.video import X264_PRESETS

        if self.video_preset not in X264_PRESETS:
            raise TridentError(f"output.video_preset must be one of {', '.join(X264_PRESETS)}, got {self.video_preset!r}")
        if not 0 <= self.video_crf <= 51:
            raise TridentError(f"output.video_crf must be 0..51 (x264's quality scale, 23 default), got {self.video_crf!r}")
        if self.video_fps < 0:
            raise TridentError(f"output.video_fps must be >= 0 (0 = the source's rate), got {self.video_fps}")
        if self.images_every < 0:
            raise TridentError(f"output.images_every must be >= 0 (0 = off), got {self.images_every}")
        if not self.dir:
            raise TridentError("output.dir is empty; pass --out DIR")


@dataclass(frozen=True)
class RunConfig:
    sources: tuple[SourceConfig, ...] = ()
    engine: EngineConfig = field(default_factory=EngineConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    tracking: bool = True  # False: detections only, no tracker
    batch: BatchConfig = field(default_factory=BatchConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    draw: DrawConfig = field(default_factory=DrawConfig)
    preprocess_device: str = "auto"  # auto: the GPU when the engine runs on CUDA, else the CPU
    metrics_json: str = ""  # write the final metrics here
    prometheus_port: int = 0  # serve /metrics on 127.0.0.1:PORT while running (0 = off)
    progress: bool = True
    # the network sees every K-th frame of each stream and the tracker predicts the frames between
    # (outputs still for every frame; pipeline/interval.py). 1 = every frame; higher: more cameras per
    # CPU, objects seen up to K-1 frames late (README: HOTA and FPS for K = 1, 2, 3)
    infer_every: int = 1
    zones: str = ""  # zones file (lines, polygons) for every stream; a source's own `zones:` replaces it
    events: tuple[str, ...] = ()  # event sinks: mqtt://HOST:PORT/TOPIC, http(s)://HOST/PATH, FILE.jsonl
    event_delivery: EventDelivery = field(default_factory=EventDelivery)
    clips: ClipConfig = field(default_factory=ClipConfig)  # MP4s around events (clips.dir = --record-clips)

    def __post_init__(self) -> None:
        if self.prometheus_port < 0 or self.prometheus_port > 65535:
            raise TridentError(f"prometheus_port must be 0..65535, got {self.prometheus_port}")
        if self.infer_every < 1:
            raise TridentError(f"infer_every must be >= 1 (1 = every frame), got {self.infer_every}")
        if self.infer_every > 1 and not self.tracking:
            raise TridentError("infer_every > 1 needs tracking (the tracker predicts the frames the network skips); drop --tracker none or use --infer-every 1")
        if self.preprocess_device not in ("auto", "cpu", "cuda"):
            raise TridentError(f"preprocess_device must be auto, cpu or cuda, got {self.preprocess_device!r}")


def source_list(sources: Any) -> list:
    """The `sources` value as a list; a bare string or number is an error, never one source per character."""
    if not isinstance(sources, (list, tuple)):
        shown = redact(str(sources))  # before the cut, which could split a password
        hint = f"; write it as a list: sources: [{shown}]" if isinstance(sources, (str, int)) and not isinstance(sources, bool) else ""
        raise TridentError(f"config key 'sources' must be a list of sources, got {type(sources).__name__} {shown[:120]!r}{hint}")
    return list(sources)


_GLOB = re.compile(r"[*?\[]")


def expand_patterns(sources: list) -> list:
    """File sources written as patterns (`clips/*.mp4`, `cam[12].mp4`) become one source per file
    they match, sorted; an entry `{uri: pattern, ...}` gives each its other settings.

    A pattern that matches no file is an error naming it (it would otherwise become
    an output named `*.jsonl`); a file whose real name holds `*`, `?` or `[` is
    taken as it is. Network addresses are never patterns (`?` starts their query)."""
    expanded: list = []
    for entry in sources:
        uri = entry.get("uri") if isinstance(entry, dict) else entry
        if not isinstance(uri, str) or not _GLOB.search(uri) or Path(uri).exists() or classify(uri) != "file":
            expanded.append(entry)
            continue
        matches = sorted(p for p in glob.glob(uri, recursive=True) if Path(p).is_file())
        if not matches:
            where = "" if Path(uri).is_absolute() else f" (relative to {Path.cwd()})"
            raise TridentError(f"source pattern {uri!r} matches no file; check the folder and the pattern{where}")
        if isinstance(entry, dict) and entry.get("stream_id") and len(matches) > 1:
            raise TridentError(
                f"source pattern {uri!r} matches {len(matches)} files but has one stream_id {entry['stream_id']!r}; "
                "drop stream_id (each stream is named after its file) or list the files one by one"
            )
        expanded += [dict(entry, uri=m) if isinstance(entry, dict) else m for m in matches]
    return expanded


def build_run_config(data: dict[str, Any]) -> RunConfig:
    data = dict(data)
    sources = source_list(data.get("sources", []))
    # a bare string is the common case: `sources: [video.mp4, rtsp://...]`
    data["sources"] = [{"uri": s} if isinstance(s, str) else s for s in sources]
    return config_from_dict(RunConfig, data)
