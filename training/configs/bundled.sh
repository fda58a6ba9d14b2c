#!/bin/sh
# Trains the bundled checkpoint (pipeline/assets/trident_n_synth.pt) from scratch, on the CPU:
#   sh training/configs/bundled.sh            (from the repository root, in the venv with `trident`)
# Stage 1: 20 videos x 100 frames, 8 epochs. Stage 2: 80 videos x 60 frames (more textures and
# layouts; the last 16 videos are the val split, never trained on), 8 epochs from stage 1's best.pt.
set -eu
trident synth --out data/synth --videos 20 --frames 100 --seed 0
trident train --config training/configs/n_synth.yaml
trident synth --out data/synth80 --videos 80 --frames 60 --seed 0
trident train --config training/configs/n_synth_ft.yaml
trident eval --weights runs/n_synth_ft/best.pt --data data/synth80 --json runs/n_synth_ft/val.json
cp runs/n_synth_ft/best.pt pipeline/assets/trident_n_synth.pt
# The shipped ONNX files `trident demo` runs (tests/pipeline/test_demo.py checks they match the checkpoint)
trident export --weights pipeline/assets/trident_n_synth.pt --out pipeline/assets/trident_n_synth.onnx --batch-range 1 8
trident export --weights pipeline/assets/trident_n_synth.pt --out pipeline/assets/trident_n_synth.int8.onnx --batch-range 1 8 --int8 --calib-images 32
