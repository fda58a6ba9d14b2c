"""DESIGN.md's dependency direction, read from the source: every import, lazy ones inside functions too."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.import_graph import CONTRACTS, find_cycle, import_graph

GRAPH = import_graph()


def _edges(source_top: str, target_top: str) -> list[tuple[str, str]]:
    return [(m, d) for m, deps in sorted(GRAPH.items()) if m.split(".")[0] == source_top for d in sorted(deps) if d.split(".")[0] == target_top]


def test_the_graph_is_read_from_every_package():
    assert {m.split(".")[0] for m in GRAPH} == {"pipeline", "engines", "trackers", "training"}
    assert "engines.postprocess" in GRAPH["pipeline.runtime"]  # a real edge is seen
    assert "training.model.checkpoint" in GRAPH["training.torch_engine"]  # lazy imports inside functions count


def test_the_cycle_finder_finds_a_circle_through_a_lazy_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_no_module_imports_itself_back_through_others():
    assert find_cycle(GRAPH) is None


def test_engines_never_import_training_not_even_lazily():
    assert _edges("engines", "training") == []


def test_pipeline_never_imports_training():
    assert _edges("pipeline", "training") == []


# training may use the trackers (pure numpy/scipy): `trident autolabel` gives a teacher's boxes track ids
# with Trident's own tracker, so a dataset's identities are the ones the pipeline would give.
@pytest.mark.parametrize("package, allowed", [("engines", {"engines"}), ("trackers", {"trackers"}), ("training", {"training", "engines", "trackers"})])
def test_packages_use_only_the_contract_modules_of_pipeline(package, allowed):
    bad = [(m, d) for m, deps in GRAPH.items() if m.split(".")[0] == package for d in deps if d.split(".")[0] not in allowed and d not in CONTRACTS]
    assert bad == [], f"{package} reaches past the contracts: {sorted(bad)}"


def test_contract_modules_import_only_each_other():
    bad = [(m, d) for m in CONTRACTS if m in GRAPH for d in GRAPH[m] if d not in CONTRACTS]
    assert bad == []


def test_engines_base_imports_no_concrete_engine():
    assert not {d for d in GRAPH["engines.base"] if d.endswith("_engine")}


def test_a_deployed_onnx_pipeline_never_imports_training(tmp_path):
    """The ONNX model through pipeline.stream on a short clip, in a fresh interpreter."""
    code = """
import json, sys
import pipeline
from pipeline.commands import BUNDLED_CLIP, BUNDLED_INT8_ONNX, asset
from pipeline.sources import SourceConfig
results = list(pipeline.stream(SourceConfig(uri=str(asset(BUNDLED_CLIP)), max_frames=6), str(asset(BUNDLED_INT8_ONNX))))
print(json.dumps({"frames": len(results), "detections": sum(len(r.detections) for r in results),
                  "training": sorted(m for m in sys.modules if m == "training" or m.startswith("training.")),
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["frames"] == 6 and report["detections"] > 0
    assert report["training"] == []
    assert report["torch"] == []  # PyTorch is an extra: the core runs ONNX models without it


def test_without_pytorch_a_command_that_needs_it_names_the_extra_and_the_rest_run(tmp_path):
    """torch made unimportable, as in a core install: `trident train` and a .pt model end with one
    message naming the extra (exit 2), `trident demo` (the bundled ONNX model) runs to the end."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    prelude = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\nfrom pipeline.cli import main\n"

    def trident(*argv: str) -> subprocess.CompletedProcess:
        code = prelude + f"sys.exit(main({list(argv)!r}))\n"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=root)

    train = trident("train", "--config", str(root / "training/configs/n_synth.yaml"))
    pt = trident("run", "--source", str(root / "pipeline/assets/demo_clip.mp4"), "--model", str(root / "pipeline/assets/trident_n_synth.pt"),
                 "--out", str(tmp_path / "pt"), "--max-frames", "2")
    for done, said in ((train, "trident train: error: this needs PyTorch"), (pt, "trident run: error: .pt models need PyTorch")):
        assert done.returncode == 2, done.stderr[-1500:]
        assert said in done.stderr and "pip install 'trident-vision[train]'" in done.stderr
        assert "Traceback" not in done.stderr
    demo = trident("demo", "--out", str(tmp_path / "demo"))
    assert demo.returncode == 0, demo.stderr[-1500:]
    assert len((tmp_path / "demo" / "demo_clip.jsonl").read_text().splitlines()) == 150
