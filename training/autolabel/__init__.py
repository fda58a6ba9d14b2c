"""`trident autolabel`: a teacher detector labels footage into a dataset `trident train` and `trident eval` read.

options.py   what a run does (frame range, classes, masks), validated before any work
teacher.py   the teacher behind the Engine protocol: one frame -> Detections in the dataset's classes
motion.py    instance masks from background subtraction inside each teacher box (static cameras)
labeler.py   the per-video loop: decode, teacher (or its recorded answer when resuming), tracker, masks
writer.py    the dataset on disk, in exactly the layout `trident synth` writes
cli.py       the command
"""
