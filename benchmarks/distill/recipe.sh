#!/bin/sh
# Distil a Trident student (det + inst + sem) from a foreign teacher on one camera's footage:
#   sh benchmarks/distill/recipe.sh            (repository root, venv active or .venv present)
# Teacher: NanoDet-m COCO (../shared/teachers, Apache-2.0) wrapped by `trident import`.
# Footage: vtest.avi from Debian's opencv-doc (768x576, 795 frames at 10 fps, a fixed camera over a square).
# Split in time: the teacher labels every frame; the first 60 % (0..476) train the student, the last
# 40 % (477..794) are held out and the student is scored there against the teacher's labels.
set -eu
PATH="$(pwd)/.venv/bin:$PATH"
TEACHERS=${TEACHERS:-../shared/teachers}
CLIP=${CLIP:-/usr/share/doc/opencv-doc/examples/data/vtest.avi}
RUN=runs/distill
mkdir -p "$RUN"

# 1. the teacher as a Trident model: NanoDet's normalisation and GFL decoding inside the graph
trident import --onnx "$TEACHERS/nanodet-m-416-coco.onnx" --format nanodet --classes "$TEACHERS/coco80.txt" --out "$RUN/teacher.onnx"

# 2. its labels: people, cars and trucks (what the clip holds), ByteTrack ids, masks from background
#    subtraction inside each box (static camera), semantic maps painted from those masks
trident autolabel --teacher "$RUN/teacher.onnx" --source "$CLIP" --out data/vtest \
    --classes person,car,truck --masks motion --val-fraction 0.4 --overwrite

# 3. the student: the bundled checkpoint, class rows carried over by name (person, car, truck),
#    fine-tuned on the train split (CPU, bfloat16 autocast; one thread is faster on a loaded 2-core box)
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} trident train --config benchmarks/distill/student.yaml
trident export --weights "$RUN/best.pt" --out "$RUN/student.onnx" --batch-range 1 8

# 4. the numbers: agreement on the held-out 40 %, mask coverage, `trident run` speed against the teacher
trident eval --weights "$RUN/student.onnx" --data data/vtest --split val --json "$RUN/eval_val.json"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} python benchmarks/distill/measure.py --data data/vtest --teacher "$RUN/teacher.onnx" --student "$RUN/student.onnx" \
    --source "$CLIP" --json benchmarks/distill/results.json --repeats 4
