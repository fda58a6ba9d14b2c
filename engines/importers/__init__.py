"""`trident import`: foreign detector ONNX files (Ultralytics YOLO, NanoDet) wrapped into Trident's contract.

The wrapped file takes Trident's uint8 BGR `images` input, does the foreign
normalisation and channel order inside the graph, decodes the foreign head
inside the graph into `boxes` (xyxy, input pixels), `scores` (per class, in
[0, 1]) and, for segmentation models, `mask_coeffs` + `protos`, and carries a
ModelSpec in its metadata. So `trident run`, `bench`, `eval`, `build-engine`
and INT8 quantization take it as they take a model of Trident's own: NMS,
mask assembly and the resize undo stay in engines/postprocess.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.errors import TridentError

FORMATS = ("ultralytics", "nanodet")


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """A names file: one class name a line in class-id order; blank lines and `#` comments are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TridentError(f"--classes {path} does not exist; pass a text file with one class name a line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TridentError(f"--classes {path} cannot be read ({exc}); pass a UTF-8 text file with one class name a line") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise TridentError(f"--classes {path} lists no class names; write one name a line, in class-id order")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise TridentError(f"--classes {path} lists {', '.join(dup)} more than once; each class needs its own name")
    return names


def _importers() -> dict[str, tuple[Callable, Callable, str]]:
    from engines.importers import nanodet, ultralytics

    return {
        "ultralytics": (ultralytics.match, ultralytics.build, ultralytics.LAYOUT),
        "nanodet": (nanodet.match, nanodet.build, nanodet.LAYOUT),
    }


def import_model(
    onnx_path: str | Path,
    fmt: str,
    out: str | Path,
    classes: str | Path | None = None,
    imgsz: tuple[int, int] | None = None,
):
    """Wrap `onnx_path` (a `fmt` export) into a Trident ONNX at `out`; returns its ModelSpec."""
    from engines.importers.graph import LayoutMismatch, load_foreign, save_atomic

    if fmt not in FORMATS:
        raise TridentError(f"--format {fmt!r} is not one Trident imports; use one of: {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise TridentError(f"--out {out} must end in .onnx (the wrapped model is an ONNX file)")
    names = read_class_names(classes) if classes is not None else None
    fm = load_foreign(onnx_path, imgsz)
    importers = _importers()
    match, build, _ = importers[fmt]
    try:
        layout = match(fm, names)
    except LayoutMismatch as why:
        hint = ""
        for other, (other_match, _, _) in importers.items():
            if other == fmt:
                continue
            try:
                other_match(fm, names)
                hint = f" It looks like --format {other}."
            except LayoutMismatch:
                pass
        accepted = "; ".join(layout_text for _, _, layout_text in importers.values())
        raise TridentError(
            f"--onnx {fm.path.name} is not a {fmt} detector: {why}. Its outputs: {fm.describe_outputs()}.{hint} "
            f"Formats accepted: {accepted}"
        ) from None
    proto, spec = build(fm, layout, _names_for(fm, layout, names))
    save_atomic(proto, out)
    return spec


def _names_for(fm, layout, names: tuple[str, ...] | None) -> tuple[str, ...]:
    """The class names: --classes when given (its count already checked by the matcher), else the file's own."""
    if names is not None:
        return names
    own = getattr(layout, "class_names", None)
    if own:
        return tuple(own)
    raise TridentError(f"--onnx {fm.path.name} carries no class names; pass --classes names.txt (one name a line)")
