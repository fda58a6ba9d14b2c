"""The teacher: any model `load_engine` opens, run exactly as `trident run` runs it.

Letterbox (engines.preprocess), `Engine.infer`, the one post-process
(engines.postprocess), then the dataset's class mapping. A foreign detector
wrapped by `trident import` is just another Trident ONNX here, so nothing in
autolabel knows how NanoDet or YOLO decode their heads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.contracts import Detections, SemanticMap
from pipeline.errors import TridentError
from training.autolabel.options import resolve_classes


class Teacher:
    """One frame in, (Detections in dataset classes, teacher SemanticMap or None) out; batch 1 keeps results
    independent of how frames were grouped, so a resumed run reproduces the interrupted one exactly."""

    def __init__(
        self,
        model: str | Path,
        class_map: tuple[tuple[str, str], ...] | None,
        score: float,
        need_masks: bool,
        device: str = "cpu",
    ) -> None:
        from engines.loader import load_engine
        from engines.postprocess import PostprocessConfig

        self.engine = load_engine(model, device=device)
        spec = self.engine.spec
        if "boxes" not in spec.output_names or "scores" not in spec.output_names or not spec.class_names:
            self.engine.close()
            raise TridentError(
                f"--teacher {model} is not a detector (its outputs are {', '.join(spec.output_names)}); "
                "autolabel needs a model with boxes and class scores: a Trident checkpoint or ONNX, "
                "or a foreign detector wrapped by `trident import`"
            )
        if need_masks and not spec.has_masks:
            self.engine.close()
            raise TridentError(
                f"--masks teacher asked for, but --teacher {model} has no instance-mask head; "
                "use --masks motion (static camera) or --masks none (boxes only)"
            )
        self.spec = spec
        self.class_names, lut = resolve_classes(tuple(spec.class_names), class_map)
        self._lut = np.asarray(lut, np.int32)
        self._post = PostprocessConfig(score_threshold=score)
        self._device = "cuda" if str(device).startswith("cuda") else "cpu"

    @property
    def has_semantic(self) -> bool:
        return self.spec.has_semantic

    @property
    def semantic_classes(self) -> tuple[str, ...]:
        return tuple(self.spec.sem_class_names)

    def __call__(self, image: np.ndarray) -> tuple[Detections, SemanticMap | None]:
        from engines.postprocess import postprocess
        from engines.preprocess import batch_input_hw, letterbox_batch

        hw = batch_input_hw([image.shape[:2]], self.spec)  # rect input for a dynamic_hw model, as `trident run`
        batch, letterboxes = letterbox_batch([image], hw, self._device, self.spec.resize)
        dets, sem = postprocess(self.engine.infer(batch), self.spec, letterboxes, self._post)[0]
        mapped = self._lut[dets.class_ids] if len(dets) else np.zeros(0, np.int32)
        keep = np.flatnonzero(mapped >= 0)
        dets = dets.select(keep)
        dets = Detections(boxes=dets.boxes, scores=dets.scores, class_ids=mapped[keep].astype(np.int32), masks=dets.masks)
        return dets, sem

    def close(self) -> None:
        self.engine.close()
