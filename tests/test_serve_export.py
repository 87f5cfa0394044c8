"""`vcamswap serve --export-repo`: a Triton model repository (configs, ONNX files, the ensembles around the swap
and ArcFace models) that answers as `vcamswap serve` does: each chain, run in onnxruntime step by step as
Triton's ensembles run it, equals the local neural engine."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from helpers.cli import run_cli

from vcamswap.compose.align import align
from vcamswap.engines.inswapper import InswapperEngine
from vcamswap.engines.neural import arcface_crop, swap_template
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh

text_format = pytest.importorskip("google.protobuf.text_format")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient is not installed: pip install 'vcamswap[remote]'")


@pytest.fixture(scope="module")
def repo(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "repo"
    r = run_cli("serve", "--models", str(models_dir), "--export-repo", str(out), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "docker run" in r.stdout and "one per call" in r.stdout  # the stand-in's batch is fixed, as the real one's
    return out


def configs(repo: Path) -> dict[str, object]:
    out = {}
    for p in sorted(repo.glob("*/config.pbtxt")):
        out[p.parent.name] = text_format.Parse(p.read_text(), model_config_pb2.ModelConfig())
    return out


def run(repo: Path, model: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(str(repo / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(None, feeds)[0]
    return out


def test_every_config_parses_and_every_step_is_a_model_of_the_repository(repo: Path) -> None:
    cfg = configs(repo)
    assert {"vcamswap_swap", "vcamswap_source", "inswapper_128", "w600k_r50", "vcamswap_latent"} <= set(cfg)
    for name, c in cfg.items():
        assert c.name == name  # type: ignore[attr-defined]
        if c.platform == "ensemble":  # type: ignore[attr-defined]
            for step in c.ensemble_scheduling.step:  # type: ignore[attr-defined]
                assert step.model_name in cfg
        else:
            assert c.backend == "onnxruntime"  # type: ignore[attr-defined]
            assert len(c.instance_group) == 1  # type: ignore[attr-defined]
            ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert cfg["w600k_r50"].max_batch_size == 16 and cfg["w600k_r50"].HasField("dynamic_batching")  # type: ignore[attr-defined]
    assert cfg["inswapper_128"].max_batch_size == 0  # type: ignore[attr-defined]


def test_the_exported_chains_equal_the_local_engine(repo: Path, models_dir: Path, media: Path) -> None:
    engine = InswapperEngine(models_dir, provider="cpu", threads=1)
    analyzer = FaceAnalyzer(BlazeFaceDetector(), FaceMesh())
    source = cv2.imread(str(media / "faces/single/biden.jpg"))
    target = cv2.imread(str(media / "faces/resolution_ladder/obama-720p.jpg"))
    sface, tface = analyzer(source), analyzer(target)
    assert sface is not None and tface is not None
    aligned = arcface_crop(source, sface.kps, 112)
    blob = run(repo, "vcamswap_source_pre", {"crop": aligned[None]})
    embedding = run(repo, "w600k_r50", {"input.1": blob})
    latent = run(repo, "vcamswap_latent", {"embedding": embedding})
    want = engine.prepare_source(source, sface).latent
    np.testing.assert_allclose(latent, want, atol=1e-5)
    crop, _ = align(target, tface.kps, swap_template(128), 128)
    blob = run(repo, "vcamswap_swap_pre", {"crop": crop[None]})
    output = run(repo, "inswapper_128", {"target": blob, "source": want})
    swapped = run(repo, "vcamswap_swap_post", {"output": output})[0]
    assert np.array_equal(swapped, engine.swap_crop(crop, want))


def test_an_existing_folder_is_never_written_over(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    r = run_cli("serve", "--models", str(models_dir), "--export-repo", str(out), timeout=120)
    assert r.returncode == 2 and "nothing is overwritten" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

