"""What wrapping costs: an imported teacher against its foreign ONNX with hand-written numpy pre/decoding.

    python benchmarks/bench_import.py [--teacher ../shared/teachers/nanodet-m-416-coco.onnx] [--frames 40] [--repeats 3]

Per frame of vtest.avi (768x576, Debian's opencv-doc), alternately:
A) Trident: `letterbox_batch` (stretch) -> the imported ONNX (normalisation
   and GFL decoding inside the graph) -> `engines.postprocess` (NMS, undo);
B) by hand: OpenCV resize + numpy normalisation -> the foreign ONNX ->
   numpy softmax decoding and NMS (tests/engines/import_reference.py).
Both in one process on the same frames, one ONNX Runtime thread count; the
script prints p50/p90 of each side and checks that both found the same boxes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=str(ROOT.parent / "shared" / "teachers" / "nanodet-m-416-coco.onnx"))
    ap.add_argument("--classes", default=None, help="default: coco80.txt next to the teacher")
    ap.add_argument("--video", default="/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--score", type=float, default=0.35)
    args = ap.parse_args()

    import onnxruntime as ort

    from engines.importers import import_model
    from engines.loader import load_engine
    from engines.onnxruntime_engine import default_threads
    from engines.postprocess import PostprocessConfig, postprocess
    from engines.preprocess import letterbox_batch
    from pipeline.bench_command import video_frames
    from tests.engines.import_reference import nanodet_reference, unmatched

    teacher = Path(args.teacher)
    classes = Path(args.classes) if args.classes else teacher.with_name("coco80.txt")
    frames = video_frames(args.video, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        imported = Path(tmp) / "teacher.onnx"
        t0 = time.perf_counter()
        import_model(teacher, "nanodet", imported, classes=classes)
        import_s = time.perf_counter() - t0
        engine = load_engine(imported, device="cpu")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = default_threads()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the engine does
        foreign = ort.InferenceSession(str(teacher), sess_options=opts, providers=["CPUExecutionProvider"])
        cfg = PostprocessConfig(score_threshold=args.score)
        times = {"trident": [], "by hand": []}
        mismatched = total = 0
        for _ in range(args.repeats):
            for f in frames:
                t0 = time.perf_counter()
                images, lbs = letterbox_batch([f], engine.spec.input_hw, resize=engine.spec.resize)
                (dets, _), = postprocess(engine.infer(images), engine.spec, lbs, cfg)
                t1 = time.perf_counter()
                boxes, _, cls = nanodet_reference(foreign, f, args.score)
                t2 = time.perf_counter()
                times["trident"].append(t1 - t0)
                times["by hand"].append(t2 - t1)
                a, b = unmatched([(x, int(c)) for x, c in zip(dets.boxes, dets.class_ids)], list(zip(boxes, cls.tolist())))
                mismatched += len(a) + len(b)
                total += len(boxes)
        engine.close()
    print(f"import: {import_s:.2f} s; {len(frames)} frames x {args.repeats}, {default_threads()} ORT threads, score {args.score}")
    for name, v in times.items():
        ms = np.asarray(v) * 1e3
        print(f"{name:<8} p50 {statistics.median(ms):6.1f} ms  p90 {np.percentile(ms, 90):6.1f} ms")
    print(f"detections: {total} by hand, {mismatched} without a same-class partner within 1 px")
    return 0 if mismatched == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
