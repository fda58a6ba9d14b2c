"""The shared post-process: thresholds, NMS, masks and semantic maps back in frame pixels."""

from __future__ import annotations

import numpy as np
import pytest

from engines.postprocess import PostprocessConfig, RawOutputs, postprocess
from engines.spec import ModelSpec
from pipeline.errors import TridentError
from pipeline.letterbox import Letterbox

INPUT_HW = (64, 96)
SPEC = ModelSpec(
    input_hw=INPUT_HW,
    class_names=("a", "b"),
    sem_class_names=("bg", "top"),
    output_names=("boxes", "scores", "mask_coeffs", "protos", "sem_logits"),
    num_protos=1,
)


def _raw(boxes, scores, coeffs=None, batch=1):
    a = len(boxes)
    protos = np.ones((batch, 1, 16, 24), np.float32)
    sem = np.zeros((batch, 2, 16, 24), np.float32)
    sem[:, 1, :8] = 5.0  # class "top" on input rows 0..31
    coeffs = np.full((a, 1), 10.0, np.float32) if coeffs is None else np.asarray(coeffs, np.float32)
    rep = lambda x: np.repeat(np.asarray(x, np.float32)[None], batch, 0)  # noqa: E731
    return RawOutputs(boxes=rep(boxes), scores=rep(scores), mask_coeffs=rep(coeffs), protos=protos, sem_logits=sem)


# a 32x96 frame letterboxed into 64x96: scale 1, 16 rows of padding on top and bottom
LB = Letterbox.fit((32, 96), INPUT_HW)


def test_letterbox_fit_centres_the_frame():
    assert (LB.scale, LB.pad_x, LB.pad_y) == (1.0, 0.0, 16.0)
    lb = Letterbox.fit((384, 640), (640, 640))
    assert (lb.scale, lb.pad_x, lb.pad_y, lb.resized_hw) == (1.0, 0.0, 128.0, (384, 640))
    boxes = np.array([[10.5, 20.25, 100.0, 200.0]], np.float32)
    np.testing.assert_allclose(Letterbox.fit((480, 640), (384, 640)).boxes_to_frame(Letterbox.fit((480, 640), (384, 640)).boxes_to_input(boxes)), boxes, atol=1e-4)


def test_boxes_are_mapped_back_to_frame_pixels_with_masks_inside_them():
    (dets, sem), = postprocess(_raw([[10, 20, 30, 40]], [[0.9, 0.1]]), SPEC, [LB])
    np.testing.assert_allclose(dets.boxes, [[10, 4, 30, 24]])
    assert dets.class_ids.tolist() == [0] and dets.scores[0] == pytest.approx(0.9)
    assert len(dets.masks) == 1 and dets.masks.frame_hw == (32, 96)
    assert dets.masks.dense().sum() == 20 * 20  # the whole box, nothing outside it
    assert dets.masks.dense()[0, 4:24, 10:30].all()
    assert dets.masks.boxes.tolist() == [[10, 4, 30, 24]] and dets.masks.nbytes < 20 * 20 + 100  # held box-locally


def test_negative_mask_coefficients_give_empty_masks():
    (dets, _), = postprocess(_raw([[10, 20, 30, 40]], [[0.9, 0.1]], coeffs=[[-10.0]]), SPEC, [LB])
    assert dets.masks.areas().tolist() == [0]


def test_semantic_map_drops_the_padding_and_has_frame_size():
    (_, sem), = postprocess(_raw([[10, 20, 30, 40]], [[0.9, 0.1]]), SPEC, [LB])
    assert sem.labels.shape == (32, 96) and sem.class_names == ("bg", "top")
    # input rows 16..31 are "top" -> frame rows 0..15; input rows 32..47 -> frame rows 16..31 "bg"
    assert (sem.labels[:14] == 1).all() and (sem.labels[18:] == 0).all()


def test_nms_is_per_class_unless_class_agnostic():
    boxes = [[10, 20, 30, 40], [11, 20, 31, 40], [50, 20, 70, 40]]
    scores = [[0.9, 0.0], [0.0, 0.8], [0.7, 0.0]]
    (dets, _), = postprocess(_raw(boxes, scores), SPEC, [LB])
    assert sorted(dets.class_ids.tolist()) == [0, 0, 1] and len(dets) == 3
    (agn, _), = postprocess(_raw(boxes, scores), SPEC, [LB], PostprocessConfig(class_agnostic=True))
    assert len(agn) == 2 and agn.scores.tolist() == pytest.approx([0.9, 0.7])
    same = [[0.9, 0.0], [0.8, 0.0], [0.7, 0.0]]
    (dup, _), = postprocess(_raw(boxes, same), SPEC, [LB])
    assert len(dup) == 2  # the overlapping same-class pair collapses to its best box


def test_score_threshold_and_max_detections():
    boxes = [[10 * i, 20, 10 * i + 8, 40] for i in range(9)]
    scores = [[0.1 * i, 0.0] for i in range(1, 10)]
    (dets, _), = postprocess(_raw(boxes, scores), SPEC, [LB], PostprocessConfig(score_threshold=0.45))
    assert len(dets) == 5 and dets.scores.min() > 0.45
    (top, _), = postprocess(_raw(boxes, scores), SPEC, [LB], PostprocessConfig(score_threshold=0.0, max_detections=3))
    assert top.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_no_candidates_give_empty_detections_with_mask_shape():
    (dets, sem), = postprocess(_raw([[10, 20, 30, 40]], [[0.01, 0.02]]), SPEC, [LB])
    assert len(dets) == 0 and len(dets.masks) == 0 and dets.masks.frame_hw == (32, 96) and sem is not None


def test_a_box_wholly_inside_the_padding_is_dropped():
    raw = _raw([[10, 0, 30, 10], [10, 20, 30, 40]], [[0.9, 0.0], [0.8, 0.0]])
    (dets, _), = postprocess(raw, SPEC, [LB])
    assert len(dets) == 1 and dets.scores[0] == pytest.approx(0.8)
    torch = pytest.importorskip("torch")
    from engines.postprocess import _postprocess_torch

    (on_torch, _), = _postprocess_torch(RawOutputs(**{n: torch.from_numpy(getattr(raw, n)) for n in SPEC.output_names}), SPEC, [LB], PostprocessConfig())
    assert len(on_torch) == 1 and on_torch.scores[0] == pytest.approx(0.8)  # the GPU path drops it too, its mask follows
    assert on_torch.masks.crop(0).sum() == dets.masks.crop(0).sum() > 0


def test_batch_results_follow_their_own_letterbox():
    other = Letterbox.fit((64, 96), INPUT_HW)
    results = postprocess(_raw([[10, 20, 30, 40]], [[0.9, 0.1]], batch=2), SPEC, [LB, other])
    np.testing.assert_allclose(results[0][0].boxes, [[10, 4, 30, 24]])
    np.testing.assert_allclose(results[1][0].boxes, [[10, 20, 30, 40]])
    assert len(results[1][0].masks) == 1 and results[1][0].masks.frame_hw == (64, 96)


def test_mismatches_are_clear_errors():
    with pytest.raises(TridentError, match="2 letterbox records"):
        postprocess(_raw([[10, 20, 30, 40]], [[0.9, 0.1]]), SPEC, [LB, LB])
    with pytest.raises(TridentError, match="outputs 3 classes but its spec names 2"):
        postprocess(_raw([[10, 20, 30, 40]], [[0.9, 0.1, 0.0]]), SPEC, [LB])
    with pytest.raises(TridentError, match="score_threshold"):
        PostprocessConfig(score_threshold=1.5)


def _random_raw(batch: int = 2, anchors: int = 600, k: int = 4, seed: int = 0) -> RawOutputs:
    """Cluttered outputs: hundreds of overlapping candidates of both classes, real prototypes."""
    rng = np.random.default_rng(seed)
    ih, iw = INPUT_HW
    centre = rng.uniform(0, [iw, ih], (batch, anchors, 2))
    half = rng.uniform(2, 20, (batch, anchors, 2))
    return RawOutputs(
        boxes=np.concatenate([centre - half, centre + half], -1).astype(np.float32),
        scores=(rng.random((batch, anchors, 2)) ** 3).astype(np.float32),
        mask_coeffs=rng.normal(size=(batch, anchors, k)).astype(np.float32),
        protos=rng.normal(size=(batch, k, ih // 4, iw // 4)).astype(np.float32),
        sem_logits=rng.normal(size=(batch, 2, ih // 4, iw // 4)).astype(np.float32),
    )


# frames smaller than, and of another aspect than, the input: scale != 1 and padding on both axes
SCALED = [Letterbox.fit((50, 90), INPUT_HW), Letterbox.fit((130, 190), INPUT_HW)]
LOW = PostprocessConfig(score_threshold=0.05)


def _assert_same(got, want, mask_tol: float = 0.0, box_tol: float = 0.0) -> None:
    assert len(got) == len(want)
    for (d, s), (e, t) in zip(got, want):
        assert len(d) == len(e) > 5
        assert isinstance(d.boxes, np.ndarray) and isinstance(d.masks.crop(0), np.ndarray) and isinstance(s.labels, np.ndarray)
        np.testing.assert_allclose(d.boxes, e.boxes, rtol=0, atol=box_tol)
        np.testing.assert_allclose(d.scores, e.scores, rtol=0, atol=box_tol)
        np.testing.assert_array_equal(d.class_ids, e.class_ids)
        np.testing.assert_array_equal(d.masks.boxes, e.masks.boxes)
        assert (d.masks.dense() != e.masks.dense()).mean() <= mask_tol
        assert (s.labels != t.labels).mean() <= mask_tol


def test_numpy_and_torch_cpu_outputs_give_identical_results():
    torch = pytest.importorskip("torch")
    raw = _random_raw()
    as_torch = RawOutputs(**{n: torch.from_numpy(getattr(raw, n).copy()) for n in SPEC.output_names})
    want = postprocess(raw, SPEC, SCALED, LOW)
    _assert_same(postprocess(as_torch, SPEC, SCALED, LOW), want)
    assert sum(d.masks.areas().sum() for d, _ in want) > 0


def test_the_gpu_path_and_the_host_path_agree():
    """`_postprocess_torch` (torch, torchvision's batched_nms and roi_align: what TensorRT's and CUDA
    outputs run) fed CPU tensors, against the numpy + OpenCV path every CPU engine runs, on
    cluttered outputs (hundreds of overlapping candidates of both classes) and class-agnostic NMS."""
    torch = pytest.importorskip("torch")
    from engines.postprocess import _postprocess_torch

    for seed, cfg in ((0, LOW), (1, LOW), (2, PostprocessConfig(score_threshold=0.05, class_agnostic=True))):
        raw = _random_raw(seed=seed)
        as_torch = RawOutputs(**{n: torch.from_numpy(getattr(raw, n).copy()) for n in SPEC.output_names})
        # float summation order in the mask products may flip a pixel at the threshold
        _assert_same(_postprocess_torch(as_torch, SPEC, SCALED, cfg), postprocess(raw, SPEC, SCALED, cfg), mask_tol=1e-4)


def test_host_nms_keeps_what_torchvision_keeps_in_its_order():
    torch = pytest.importorskip("torch")
    from torchvision.ops import batched_nms

    from engines.postprocess import _select_host

    for seed in range(20):
        rng = np.random.default_rng(seed)
        n, classes = int(rng.integers(1, 300)), int(rng.integers(1, 5))
        xy = rng.uniform(0, 600, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 120, (n, 2))], 1).astype(np.float32)
        scores = rng.random((n, classes)).astype(np.float32)
        topk = 1000 if seed % 2 else int(rng.integers(5, 60))  # odd seeds: no top-k cut; even: the top-k branch
        cfg = PostprocessConfig(score_threshold=0.3, iou_threshold=float(rng.uniform(0.3, 0.8)), max_detections=50, pre_nms_topk=topk)
        kept, anchors = _select_host(boxes, scores, cfg)
        best, cls = torch.from_numpy(scores).max(dim=1)
        cand = torch.nonzero(best > 0.3).squeeze(1)
        if cand.numel() > topk:
            cand = cand[best[cand].topk(topk).indices]
        want = cand[batched_nms(torch.from_numpy(boxes)[cand], best[cand], cls[cand], cfg.iou_threshold)[:50]].numpy()
        np.testing.assert_array_equal(anchors, want)
        np.testing.assert_array_equal(kept[:, :4], boxes[want])
        np.testing.assert_array_equal(kept[:, 5], scores[want].argmax(1))


def test_a_cpu_run_never_imports_torch(tmp_path):
    """ONNX Runtime on the CPU end to end - engine, letterbox, post-process, tracker, every sink -
    with torch made unimportable: importing torch and torchvision.ops cost 2.5-3.5 s of each run's start."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
        "from pipeline.cli import main\n"
        f"main(['run', '--source', {str(root / 'pipeline/assets/demo_clip.mp4')!r}, '--model', {str(root / 'pipeline/assets/trident_n_synth.onnx')!r},"
        f" '--out', {str(tmp_path)!r}, '--max-frames', '12', '--no-progress'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (tmp_path / "demo_clip.jsonl").read_text().splitlines()
    assert len(lines) == 12 and sum('"counts"' in line for line in lines) > 0  # RLE masks were made, without torch


def test_masks_are_the_box_crops_of_the_frame_masks():
    (dets, _), _ = postprocess(_random_raw(), SPEC, SCALED, LOW)
    boxes = dets.masks.boxes
    np.testing.assert_array_equal(boxes[:, :2], np.floor(dets.boxes[:, :2]))  # crop box = the integer hull of the box
    np.testing.assert_array_equal(boxes[:, 2:], np.ceil(dets.boxes[:, 2:]))
    assert dets.masks.nbytes == int(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()) + boxes.nbytes


@pytest.mark.gpu
def test_cuda_outputs_are_post_processed_on_the_gpu_like_on_the_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (torch.cuda.is_available() is False)")
    raw = _random_raw()
    on_gpu = RawOutputs(**{n: torch.from_numpy(getattr(raw, n)).cuda() for n in SPEC.output_names})
    want = postprocess(raw, SPEC, SCALED, LOW)
    # roi_align and bilinear upsampling may round differently on the GPU: a pixel at the threshold can flip
    _assert_same(postprocess(on_gpu, SPEC, SCALED, LOW), want, mask_tol=1e-3, box_tol=1e-5)
    half = RawOutputs(**{n: getattr(on_gpu, n).half() for n in SPEC.output_names})  # a TensorRT FP16 engine's outputs
    for (d, _), (e, _) in zip(postprocess(half, SPEC, SCALED, LOW), want):
        assert d.boxes.dtype == np.float32 and abs(len(d) - len(e)) <= 0.1 * len(e)  # FP16 rounding may move a few past a threshold


@pytest.mark.parametrize("dense", [True, False], ids=["one-weight-matrix", "a-matrix-a-box"])
def test_the_cpu_mask_path_samples_exactly_as_roi_align(dense, monkeypatch):
    """The numpy path (two bilinear weight matrices a box) against torchvision's roi_align
    (aligned, one sample a pixel) on random prototypes, with boxes of every size, some reaching
    past the prototype map's edges (roi_align's clamp and its zero outside [-1, size]); both
    forms of the weights (one matrix for all boxes, or one per box past the size limit)."""
    torch = pytest.importorskip("torch")
    from torchvision.ops import roi_align

    from engines import postprocess
    from engines.postprocess import _mask_pixels_cpu

    if not dense:
        monkeypatch.setattr(postprocess._Axis, "DENSE_LIMIT", 0)

    rng = np.random.default_rng(3)
    flipped = total = 0
    for _ in range(60):
        k, ph, pw, n = int(rng.integers(1, 33)), int(rng.integers(4, 30)), int(rng.integers(4, 30)), int(rng.integers(1, 8))
        protos = rng.normal(size=(k, ph, pw)).astype(np.float32)
        coeffs = rng.normal(size=(n, k)).astype(np.float32)
        x0, y0 = rng.uniform(-8, pw * 4, n), rng.uniform(-8, ph * 4, n)
        rois = np.stack([x0, y0, x0 + rng.uniform(0.5, pw * 4, n), y0 + rng.uniform(0.5, ph * 4, n)], 1).astype(np.float32)
        sizes = [(int(rng.integers(0, 70)), int(rng.integers(1, 70))) for _ in range(n)]  # a 0-row box is skipped
        got = _mask_pixels_cpu(coeffs, protos, rois / 4, sizes, 0.0)
        logits = (torch.from_numpy(coeffs) @ torch.from_numpy(protos).reshape(k, -1)).reshape(n, 1, ph, pw)
        boxes = torch.cat([torch.zeros(n, 1), torch.from_numpy(rois)], 1)
        want = [
            (roi_align(logits[i : i + 1], boxes[i : i + 1], s, spatial_scale=0.25, sampling_ratio=1, aligned=True) > 0).reshape(-1).numpy()
            for i, s in enumerate(sizes)
            if s[0] > 0
        ]
        want = np.concatenate(want) if want else np.zeros(0, bool)
        assert got.shape == want.shape
        flipped, total = flipped + int((got != want).sum()), total + want.size
    assert total > 100_000 and flipped <= total * 1e-5  # float summation order may flip a pixel at the threshold
