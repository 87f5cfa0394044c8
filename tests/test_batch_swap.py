"""Several faces of a frame in one swap-model call: the dynamic-batch copy made once at install time (the
original untouched), the batched call giving the single calls' crops, and face-by-face calls without a copy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from helpers.cli import run_cli
from onnx import TensorProto, helper

from vcamswap.compose.align import align
from vcamswap.engines import SwapItem
from vcamswap.engines.inswapper import InswapperEngine, InswapperSource
from vcamswap.faces.tracking import Tracker
from vcamswap.modelstore import arch, standins
from vcamswap.modelstore.batch import batched_path, current_batched, ensure_batched
from vcamswap.presets import get_preset

TWO = "faces/multi/obama_biden_two_people.jpg"
GREY_LEVELS = 1  # batched and single fp32 outputs differ in the last bits; after rounding to uint8, by <= 1


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_for(path: Path, out: Path) -> Path:
    out.write_text("\n".join([
        "schema = 1", "", "[models.inswapper_128]", 'file = "inswapper_128.onnx"', f"size = {path.stat().st_size}",
        f'sha256 = "{sha(path)}"', 'licence = "test"', "sources = []", "",
    ]), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-ins as a user's folder holds them before any install step: no batched copy."""
    out = tmp_path_factory.mktemp("plain")
    standins.make_all(out)
    return out


@pytest.fixture(scope="module")
def batch_dir(plain_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("batched")
    for p in plain_dir.glob("*.onnx"):
        shutil.copy(p, out / p.name)
    assert ensure_batched(out).outcome == "made"
    return out


def test_stand_ins_fix_batch_to_one_like_the_real_model(plain_dir: Path, tmp_path: Path) -> None:
    """The real inswapper_128.onnx: `target` [1,3,128,128], `source` [1,512]; the stand-in and the
    architecture model say the same, so the batching path is tested against the real interface."""
    arch_path = tmp_path / "arch.onnx"
    onnx.save(arch.inswapper_graph(channels=64)[0], str(arch_path))
    for path in (plain_dir / "inswapper_128.onnx", arch_path):
        g = onnx.load(str(path)).graph
        shapes = {v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in
                           v.type.tensor_type.shape.dim] for v in list(g.input) + list(g.output)}
        assert shapes == {"target": [1, 3, 128, 128], "source": [1, 512], "output": [1, 3, 128, 128]}


def test_install_makes_the_batched_copy_once_and_leaves_the_original(plain_dir: Path, tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    offline.mkdir()
    shutil.copy(plain_dir / "inswapper_128.onnx", offline / "inswapper_128.onnx")
    manifest = manifest_for(offline / "inswapper_128.onnx", tmp_path / "m.toml")
    models = tmp_path / "models"
    common = ["models", "download", "inswapper_128", "--manifest", str(manifest), "--models", str(models)]
    r = run_cli(*common, "--from", str(offline))
    assert r.returncode == 0, r.stderr
    copy = batched_path(models)
    assert "made inswapper_128.batch.onnx" in r.stdout and copy.is_file()
    original = models / "inswapper_128.onnx"
    assert sha(original) == sha(offline / "inswapper_128.onnx")  # the installed original is the verified file
    dims = onnx.load(str(copy)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 128, 128]
    before = (copy.stat().st_mtime_ns, copy.stat().st_ino, sha(copy), original.stat().st_mtime_ns)

    r = run_cli(*common)  # installed already: nothing is fetched, the copy is not made again
    assert r.returncode == 0, r.stderr
    assert "already installed inswapper_128" in r.stdout and f"already made {copy}" in r.stdout
    assert (copy.stat().st_mtime_ns, copy.stat().st_ino, sha(copy), original.stat().st_mtime_ns) == before
    r = run_cli("models", "verify", "inswapper_128", "--manifest", str(manifest), "--models", str(models))
    assert r.returncode == 0 and "OK" in r.stdout  # the original still verifies against the manifest


def crops_of_two_people(media: Path, engine: InswapperEngine, detector, mesh) -> list[SwapItem[InswapperSource]]:
    img = cv2.imread(str(media / TWO))
    faces = Tracker(detector, mesh).track(img, "all")
    assert len(faces) == 2
    src_a = engine.prepare_source(img, faces[0].geometry)
    src_b = engine.prepare_source(img, faces[1].geometry)
    items = []
    for face, src in ((faces[0], src_b), (faces[1], src_a), (faces[0], src_a)):  # 3 faces, 2 sources
        crop, m = align(img, face.geometry.kps, engine.template(128), 128)
        items.append(SwapItem(crop, face.geometry.transformed(m), src))
    return items


def test_the_batched_call_gives_the_single_calls_crops(batch_dir: Path, media: Path, detector, mesh) -> None:
    engine = InswapperEngine(batch_dir, provider="cpu", threads=1)
    assert engine.batch_session is not None
    items = crops_of_two_people(media, engine, detector, mesh)
    preset = get_preset("balanced")
    many = engine.swap_many(items, preset)
    assert engine.batched_calls == 1
    single = [engine.swap(i.crop, i.face, i.source, preset) for i in items]
    for a, b in zip(many, single, strict=True):
        assert np.abs(a.crop.astype(np.int16) - b.crop.astype(np.int16)).max() <= GREY_LEVELS
        np.testing.assert_array_equal(a.mask, b.mask)
    assert np.abs(many[0].crop.astype(np.int16) - many[2].crop.astype(np.int16)).mean() > 5  # sources differ
    assert engine.swap_many(items[:1], preset)[0].crop.shape == (128, 128, 3) and engine.batched_calls == 1


def test_without_a_current_copy_faces_are_swapped_one_call_each(plain_dir: Path, batch_dir: Path, media: Path,
                                                                 detector, mesh, tmp_path: Path) -> None:
    engine = InswapperEngine(plain_dir, provider="cpu", threads=1)
    assert engine.batch_session is None and current_batched(plain_dir) is None
    items = crops_of_two_people(media, engine, detector, mesh)
    out = engine.swap_many(items, get_preset("balanced"))
    assert len(out) == 3 and engine.batched_calls == 0
    # An original replaced after the copy was made (a reinstall) makes the copy stale.
    stale = tmp_path / "stale"
    shutil.copytree(batch_dir, stale)
    assert current_batched(stale) is not None
    os.utime(stale / "inswapper_128.onnx", ns=(1, 1))
    assert current_batched(stale) is None
    assert InswapperEngine(stale, provider="cpu", threads=1).batch_session is None
    assert ensure_batched(stale).outcome == "made" and current_batched(stale) is not None


def test_the_architecture_model_batches_too(tmp_path: Path) -> None:
    """The inswapper_128-architecture graph (AdaIN from the latent, reshapes to [1, 2C, 1, 1]) at low width."""
    onnx.save(arch.inswapper_graph(channels=64)[0], str(tmp_path / "inswapper_128.onnx"))
    result = ensure_batched(tmp_path)
    assert result.outcome == "made", result.detail


def test_a_graph_that_cannot_batch_gets_no_copy(tmp_path: Path) -> None:
    """A graph that joins the latent with a fixed [1, 1] tensor cannot take two faces: no copy is kept."""
    target = helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128])
    source = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])
    extra = onnx.numpy_helper.from_array(np.zeros((1, 1), np.float32), "extra")
    nodes = [helper.make_node("Concat", ["source", "extra"], ["joined"], axis=1),
             helper.make_node("ReduceMean", ["joined"], ["level"], axes=[1], keepdims=1),
             helper.make_node("Unsqueeze", ["level", "axes23"], ["level4"]),
             helper.make_node("Add", ["target", "level4"], ["output"])]
    axes = onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "axes23")
    graph = helper.make_graph(nodes, "fixed", [target, source], [output], initializer=[extra, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    original = tmp_path / "inswapper_128.onnx"
    onnx.save(model, str(original))
    before = sha(original)
    result = ensure_batched(tmp_path)
    assert result.outcome == "cannot-batch" and result.path is None
    assert not batched_path(tmp_path).exists() and sha(original) == before
    assert [p.name for p in tmp_path.iterdir()] == ["inswapper_128.onnx"]  # no temporary file left behind


def test_bench_batch_reports_one_line_per_face_count(plain_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(plain_dir, models)
    out = tmp_path / "batch.json"
    r = run_cli("bench", "--batch", "1,2", "--runs", "1", "--models", str(models), "--provider", "cpu",
                "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "batched copy: made" in r.stdout and "1 face:" in r.stdout and "2 faces:" in r.stdout
    rows = json.loads(out.read_text())["batch"]
    assert [(row["faces"], row["batched"]) for row in rows] == [(1, True), (2, True)]
    r = run_cli("bench", "--batch", "0,x")
    assert r.returncode == 2 and "face counts" in r.stderr and "Traceback" not in r.stderr
