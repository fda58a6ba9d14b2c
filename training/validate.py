"""Run a model (torch module or any Engine) over a dataset split and score it with training.evaluate.

Predictions go through engines.postprocess - the same NMS, mask assembly and
letterbox undo as deployment - so validation numbers are deployment numbers.
(training may import engines; engines never imports training.)
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from pipeline.letterbox import Letterbox


def letterbox_of(target: dict[str, Any], input_hw: tuple[int, int], resize: str = "letterbox") -> Letterbox:
    if resize == "stretch":  # eval_transforms(resize="stretch"): the geometry is the frame and input sizes alone
        return Letterbox.stretch(tuple(int(v) for v in target["orig_size"]), tuple(input_hw))
    pad_x, pad_y = target["pad"]
    return Letterbox(float(target["scale"]), float(pad_x), float(pad_y), tuple(int(v) for v in target["orig_size"]), tuple(input_hw))


def semantic_to_frame(semantic, lb: Letterbox) -> np.ndarray:
    """Input-resolution gt labels -> frame resolution (crop the padding, nearest resize as the post-process does)."""
    from engines.preprocess import resize_labels

    labels = semantic.numpy() if hasattr(semantic, "numpy") else np.asarray(semantic)
    nh, nw = lb.resized_hw
    y, x = int(lb.pad_y), int(lb.pad_x)
    return resize_labels(labels[y : y + nh, x : x + nw].astype(np.uint8), lb.orig_hw)


def predict(
    infer: Callable[[Any], Any],
    batches: Iterable[tuple[Any, list[dict]]],
    spec,
    post_cfg=None,
) -> tuple[dict[int, Any], dict[int, np.ndarray], dict[int, np.ndarray]]:
    """infer(images uint8 [B,3,H,W]) -> RawOutputs. Returns detections (EncodedDetections), semantic predictions and semantic gt per image id."""
    from engines.postprocess import PostprocessConfig, postprocess
    from training.evaluate import EncodedDetections

    post_cfg = post_cfg or PostprocessConfig(score_threshold=0.001, max_detections=100)
    detections, sem_pred, sem_gt = {}, {}, {}
    for images, targets in batches:
        lbs = [letterbox_of(t, spec.input_hw, spec.resize) for t in targets]
        results = postprocess(infer(images), spec, lbs, post_cfg)
        for t, lb, (dets, sem) in zip(targets, lbs, results):
            image_id = int(t["image_id"])
            detections[image_id] = EncodedDetections.from_detections(dets)  # RLE: ~20x smaller than the box crops
            if sem is not None and t.get("semantic") is not None:
                sem_pred[image_id] = sem.labels
                sem_gt[image_id] = semantic_to_frame(t["semantic"], lb)
    return detections, sem_pred, sem_gt


def spec_for_model(model, cfg) -> Any:
    from training.export import spec_from_model_config

    return spec_from_model_config(cfg, tuple(model.output_names))


def validate_model(model, cfg, dataset, batch_size: int = 8, max_batches: int = 0, device: str = "cpu", score_threshold: float = 0.5):
    """EvalResult of a torch MultiTaskNet on a dataset (eval transforms: letterbox only)."""
    import torch
    from torch.utils.data import DataLoader

    from engines.postprocess import RawOutputs
    from training.data import collate
    from training.evaluate import evaluate

    spec = spec_for_model(model, cfg)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    was_training = model.training
    model.eval()

    def infer(images):
        with torch.inference_mode():
            outs = model.export_forward(images.to(device))
        return RawOutputs.from_sequence(model.output_names, [o.float().cpu() for o in outs])

    def batches():
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                return
            yield batch

    try:
        dets, sem_pred, sem_gt = predict(infer, batches(), spec)
    finally:
        model.train(was_training)
    return evaluate(
        dataset.annotation_file if "det" in cfg.heads else None,
        dets if "det" in cfg.heads else None,
        semantic_predictions=[sem_pred[i] for i in sorted(sem_pred)] if sem_pred else None,
        semantic_targets=[sem_gt[i] for i in sorted(sem_pred)] if sem_pred else None,
        semantic_class_names=tuple(cfg.sem_class_names),
        score_threshold=score_threshold,
        category_ids=getattr(dataset, "category_ids", None),
        image_ids=sorted(dets) if dets else None,
    )
