"""Mosaic augmentation: four samples tiled around a random centre into one model-sized input.

Each sample is scaled to fit a quarter of the input (half its height and
width) and placed so that one of its corners touches the random centre; parts
falling outside the canvas are cut off, which is why boxes are recomputed from
the pasted masks afterwards. Small objects get more context per batch and
the network sees objects cut at arbitrary borders.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from engines.preprocess import resize_image, resize_labels
from training.data.sample import IGNORE_INDEX, PAD_VALUE, Sample, refit_boxes, to_model_input
from training.data.transforms import DEFAULT_INPUT_HW, LetterboxTransform


class Mosaic:
    """Combine exactly four samples into one of size ``input_hw``.

    Label kinds are merged conservatively: boxes only if all four have boxes,
    masks only if all four have masks; semantic labels are kept when any has
    them, with 255 (ignore) over the tiles of samples without. The result
    keeps the first sample's image_id and orig_size, and its scale/pad map the
    first sample's original pixels into the mosaic.
    """

    def __init__(self, rng: np.random.Generator, input_hw: tuple[int, int] = DEFAULT_INPUT_HW, min_area: float = 4.0) -> None:
        self.rng, self.input_hw, self.min_area = rng, (int(input_hw[0]), int(input_hw[1])), min_area

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, samples: Sequence[Sample]) -> Sample:
        if len(samples) != 4:
            raise ValueError(f"Mosaic needs exactly 4 samples, got {len(samples)}")
        h, w = self.input_hw
        xc = int(self.rng.uniform(0.25 * w, 0.75 * w))
        yc = int(self.rng.uniform(0.25 * h, 0.75 * h))
        with_boxes = all(s.boxes is not None for s in samples)
        with_masks = with_boxes and all(s.masks is not None for s in samples)
        with_sem = any(s.semantic is not None for s in samples)

        image = np.full((h, w, 3), PAD_VALUE, np.uint8)
        semantic = np.full((h, w), IGNORE_INDEX, np.uint8) if with_sem else None
        boxes, labels, masks = [], [], []
        placements = []
        for k, s in enumerate(samples):
            sh, sw = s.hw
            r = min(h / 2 / sh, w / 2 / sw)
            nw, nh = max(1, int(round(sw * r))), max(1, int(round(sh * r)))
            # corner k of the tile touches the centre: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
            dx = xc - nw if k in (0, 2) else xc
            dy = yc - nh if k in (0, 1) else yc
            placements.append((r, dx, dy))
            # canvas window and the matching window inside the resized tile
            x0, y0, x1, y1 = max(dx, 0), max(dy, 0), min(dx + nw, w), min(dy + nh, h)
            tx0, ty0 = x0 - dx, y0 - dy
            win = (slice(y0, y1), slice(x0, x1))
            twin = (slice(ty0, ty0 + y1 - y0), slice(tx0, tx0 + x1 - x0))

            # the deployment letterbox's interpolation, so tiles are shrunk the way large frames are
            image[win] = resize_image(s.image, (nh, nw))[twin]
            if with_sem and s.semantic is not None:
                semantic[win] = resize_labels(s.semantic, (nh, nw))[twin]
            if with_boxes:
                boxes.append(s.boxes * np.float32(r) + np.array([dx, dy, dx, dy], np.float32))
                labels.append(s.labels)
            if with_masks:
                tile = np.zeros((len(s.masks), h, w), np.uint8)
                for i, m in enumerate(s.masks):
                    tile[i][win] = resize_labels(m, (nh, nw))[twin]
                masks.append(tile)

        r0, dx0, dy0 = placements[0]
        first = samples[0]
        out = Sample(
            image=image,
            image_id=first.image_id,
            orig_size=first.orig_size,
            boxes=np.concatenate(boxes).astype(np.float32) if with_boxes else None,
            labels=np.concatenate(labels).astype(np.int64) if with_boxes else None,
            masks=np.concatenate(masks) if with_masks else None,
            semantic=semantic,
            scale=first.scale * r0,
            pad=(first.pad[0] * r0 + dx0, first.pad[1] * r0 + dy0),
        )
        return refit_boxes(out, self.min_area, from_masks=True)


class MosaicDataset(torch.utils.data.Dataset):
    """Wrap a Trident dataset so that, with probability ``p``, a sample is a mosaic of it and three random others.

    The wrapped dataset's own transforms are bypassed (its raw ``load_sample``
    is used); ``transforms`` here run after the mosaic or after the letterbox
    used for non-mosaic samples, e.g. RandomAffine, HSVJitter, HorizontalFlip.
    """

    def __init__(
        self,
        dataset: Any,
        rng: np.random.Generator,
        input_hw: tuple[int, int] = DEFAULT_INPUT_HW,
        p: float = 1.0,
        transforms: Callable[[Sample], Sample] | None = None,
        min_area: float = 4.0,
    ) -> None:
        if not hasattr(dataset, "load_sample"):
            raise TypeError(f"MosaicDataset needs a Trident dataset with load_sample(), got {type(dataset).__name__}")
        self.dataset, self.rng, self.p = dataset, rng, p
        self.mosaic = Mosaic(rng, input_hw, min_area)
        self.letterbox = LetterboxTransform(input_hw)
        self.transforms = transforms

    @property
    def problems(self) -> Any:
        return self.dataset.problems

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seed)
        self.mosaic.rng = self.rng

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        if self.rng.random() < self.p and len(self.dataset) > 0:
            others = self.rng.integers(0, len(self.dataset), size=3)
            sample = self.mosaic([self.dataset.load_sample(int(i)) for i in (index, *others)])
        else:
            sample = self.letterbox(self.dataset.load_sample(index))
        if self.transforms is not None:
            sample = self.transforms(sample)
        return to_model_input(sample)
