"""One annotated picture per frame, shared by every sink that shows or stores it.

The annotated MP4, the JPEG dumps and the live window all want the same
picture. Drawing it in each of them would pay for the draw (semantic tint,
masks, boxes, labels, trails) once per sink and keep one trail history per
sink. Instead one `AnnotationStage` per stream owns that stream's
`Annotator`: it runs on its own sink thread, draws each frame once and in
frame order (the Annotator has a single owner, so its trails need no lock
and follow the stream), and hands the same read-only picture to every
picture sink. Those keep their own threads, so encoding, writing JPEGs and
showing a window still overlap with each other and with the drawing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.contracts import FrameResult
from pipeline.draw import Annotator
from pipeline.errors import TridentError
from pipeline.sinks.base import Sink, SinkRunner

# Pictures are full frames: the stage's own queue (results that point at frames
# already decoded) does the buffering, and the picture queues stay short.
PICTURE_QUEUE = 4


@dataclass(frozen=True, eq=False)
class Picture:
    """A frame's result and its annotated image, uint8[H,W,3] BGR.

    The image is shared by every picture sink of the stream and marked
    read-only: a sink that needs to change it (resize, overlay) makes a copy."""

    result: FrameResult
    image: np.ndarray


class AnnotationStage(Sink[FrameResult]):
    """Draws each FrameResult of one stream once and feeds the picture to `sinks`, each on its own thread."""

    def __init__(self, annotator: Annotator, sinks: Sequence[Sink[Picture]], queue_size: int = PICTURE_QUEUE, name: str = "annotate"):
        if not sinks:
            raise TridentError("an annotation stage needs at least one picture sink (video, images or window)")
        self.name = name
        self.stage = "draw"
        self.annotator = annotator
        self.drawn = 0
        self.feeds = [SinkRunner(sink, queue_size) for sink in sinks]

    def write(self, result: FrameResult) -> None:
        live = [runner for runner in self.feeds if runner.error is None and runner.sink.wants(result)]
        if not live:
            # every picture sink failed, or none wants this frame (a preview nobody watches, or one
            # capped below the stream's rate): drawing would be for nobody. The trails of a stream
            # drawn only for a capped preview are then sampled at the preview's rate.
            self.last_timing = (0.0, 0.0)
            return
        started, cpu = time.perf_counter(), time.thread_time()
        image = self.annotator.draw(result)
        image.setflags(write=False)
        self.drawn += 1
        # the draw alone: handing the picture on may wait for a full encoder queue
        self.last_timing = (time.perf_counter() - started, time.thread_time() - cpu)
        picture = Picture(result, image)
        for runner in live:
            runner.submit(picture)

    def close(self) -> None:
        """Drain, flush and join every picture sink (each with its own timeout)."""
        for runner in self.feeds:
            runner.close()
