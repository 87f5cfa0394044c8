"""The swap model's fp16 copy, which file the engine runs per provider and precision, and the GPU session
options (TensorRT caches, fp16, CUDA graphs, the build's progress line), on stand-in models and real media.

No GPU here: the option builders are pure functions checked by value, and the TensorRT build announcement is
seen through the real session code with a slow session constructor put in onnxruntime's place.
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers.cli import run_cli
from helpers.faces import read

from vcamswap.compose.align import align
from vcamswap.engines import EngineUnavailable
from vcamswap.engines.inswapper import InswapperEngine
from vcamswap.engines.neural import read_emap
from vcamswap.engines.precision import choose_swap_model, wanted_precision
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.modelstore import arch, standins
from vcamswap.modelstore.fp16 import ConvertError, fp16_files, fp16_state, make_fp16
from vcamswap.paths import sha256_file
from vcamswap.presets import get_preset
from vcamswap.runtime import gpu, providers
from vcamswap.settings import SettingsError, parse_settings

SOURCE = "faces/single/biden.jpg"
TARGET = "faces/resolution_ladder/obama-720p.jpg"
ALL_EPS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

pytest.importorskip("onnxconverter_common", reason="fp16 conversion needs 'vcamswap[fp16]'")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fp16-standins")
    standins.make_all(out)
    assert make_fp16(out).action == "made"
    return out


def fresh_dir(tmp_path: Path) -> Path:
    standins.make_all(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------------------------- conversion


def test_copy_keeps_float32_io_and_the_emap_and_leaves_the_original_alone(tmp_path: Path) -> None:
    folder = fresh_dir(tmp_path)
    files = fp16_files(folder)
    before = sha256_file(files.source)
    make_fp16(folder)
    assert sha256_file(files.source) == before
    half = onnx.load(str(files.copy))
    io_types = {v.name: v.type.tensor_type.elem_type for v in [*half.graph.input, *half.graph.output]}
    assert io_types == {"target": onnx.TensorProto.FLOAT, "source": onnx.TensorProto.FLOAT,
                        "output": onnx.TensorProto.FLOAT}
    weights = [t for t in half.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert weights, "no weight was stored in fp16"
    np.testing.assert_array_equal(read_emap(files.copy), read_emap(files.source))  # the float32 emap, last


def test_fp16_swap_matches_fp32_on_a_real_face(models_dir: Path, media: Path) -> None:
    """Tolerance 1 grey level: the stand-in's output is 0.4 * target + 0.6 * sigmoid(40 * latent); fp16 keeps
    11 significant bits (relative error 2^-11 = 0.05% per rounding), a few roundings on values in [0, 1] stay
    under 0.002, i.e. under half a grey level, so rounding to uint8 moves a pixel by at most one level."""
    analyzer = FaceAnalyzer(BlazeFaceDetector(), FaceMesh())
    source_img, target_img = read(media, SOURCE), read(media, TARGET)
    source_face, target_face = analyzer(source_img), analyzer(target_img)
    assert source_face is not None and target_face is not None
    preset = get_preset("balanced")
    outs = {}
    for precision in ("fp32", "fp16"):
        engine = InswapperEngine(models_dir, provider="cpu", threads=1, precision=precision)
        assert engine.swap_model.precision == precision
        crop, m = align(target_img, target_face.kps, engine.template(128), 128)
        outs[precision] = engine.swap(crop, target_face.transformed(m), engine.prepare_source(source_img, source_face),
                                      preset).crop
    diff = np.abs(outs["fp32"].astype(int) - outs["fp16"].astype(int))
    assert diff.max() <= 1
    assert float(np.abs(outs["fp32"].astype(int) - crop.astype(int)).mean()) > 10  # a swap ran


def test_fp16_keeps_the_architecture_look_alike_within_two_grey_levels(tmp_path: Path) -> None:
    """Convolutions, instance norms, resizes of the real graph (64 channels here, not 1024): fp16 sums over
    3x3x64 products add error as sqrt(n) * 2^-11 of the activations; 2 grey levels (0.008) is 30x what a
    correct conversion gives here (about 3e-4) and far below what a lost cast or an fp16 emap would do."""
    arch.build_arch_model(tmp_path / "inswapper_128.onnx", channels=64)
    make_fp16(tmp_path)
    rng = np.random.default_rng(3)
    feeds = {"target": rng.random((1, 3, 128, 128), np.float32),
             "source": standins.latent_of(rng.standard_normal(512))}
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
            for p in (tmp_path / "inswapper_128.onnx", tmp_path / "inswapper_128.fp16.onnx")]
    assert outs[1].dtype == np.float32
    src, half = (os.path.getsize(tmp_path / n) for n in ("inswapper_128.onnx", "inswapper_128.fp16.onnx"))
    emap_bytes = 512 * 512 * 4  # stays float32
    assert half - emap_bytes < 0.55 * (src - emap_bytes)  # the weights are stored in half the bytes
    assert float(np.abs(outs[0] - outs[1]).max()) <= 2 / 255
    assert float(outs[0].std()) > 0.01  # the look-alike gives a picture, not a constant


# ----------------------------------------------------------------------------------------------- stale, overwrite


def test_changed_source_makes_the_copy_stale_and_overwrite_remakes_it(tmp_path: Path) -> None:
    folder = fresh_dir(tmp_path)
    files = fp16_files(folder)
    make_fp16(folder)
    assert fp16_state(folder) == "ok"
    os.utime(files.source, ns=(time.time_ns(), time.time_ns() + 10**9))  # copied again, same bytes
    assert fp16_state(folder) == "ok"
    assert make_fp16(folder).action == "current"
    standins.save(standins.inswapper_model(seed=2), files.source)  # another model
    assert fp16_state(folder) == "stale"
    choice = choose_swap_model(folder, "auto", "cuda", True)
    assert choice.path == files.source and choice.precision == "fp32"
    assert choice.note and "made from another" in choice.note and "--overwrite" in choice.note
    old = sha256_file(files.copy)
    with pytest.raises(ConvertError, match="made from another inswapper_128.onnx; add --overwrite"):
        make_fp16(folder)
    assert sha256_file(files.copy) == old
    assert make_fp16(folder, overwrite=True).action == "made"
    assert fp16_state(folder) == "ok" and sha256_file(files.copy) != old
    np.testing.assert_array_equal(read_emap(files.copy), standins.emap_matrix(2))


def test_a_file_this_command_did_not_make_is_never_replaced_without_overwrite(tmp_path: Path) -> None:
    folder = fresh_dir(tmp_path)
    files = fp16_files(folder)
    files.copy.write_bytes(b"the user's own fp16 model")
    with pytest.raises(ConvertError, match="is not one this command made"):
        make_fp16(folder)
    assert files.copy.read_bytes() == b"the user's own fp16 model"
    assert choose_swap_model(folder, "fp16", "cuda", True).precision == "fp32"
    make_fp16(folder, overwrite=True)
    with files.copy.open("r+b") as f:  # bytes changed after it was made: no longer what the record vouches for
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\0")
    with pytest.raises(ConvertError, match="--overwrite"):
        make_fp16(folder)


def test_cli_convert_says_one_line_when_the_source_is_missing(tmp_path: Path) -> None:
    r = run_cli("models", "convert", "--fp16", "--models", str(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "inswapper_128.onnx is not installed" in lines[0] and "vcamswap models download inswapper_128" in lines[0]
    assert not list(tmp_path.iterdir())


def test_cli_convert_makes_then_confirms_the_copy(tmp_path: Path) -> None:
    folder = fresh_dir(tmp_path)
    first = run_cli("models", "convert", "--fp16", "--models", str(folder))
    assert first.returncode == 0 and "made" in first.stdout, first.stderr
    second = run_cli("models", "convert", "--fp16", "--models", str(folder))
    assert second.returncode == 0 and "already made" in second.stdout, second.stderr
    listed = run_cli("models", "list", "--models", str(folder))
    assert any(line.startswith("inswapper_128.fp16\t") and "made from the installed original" in line
               for line in listed.stdout.splitlines()), listed.stdout
    no_flag = run_cli("models", "convert", "--models", str(folder))
    assert no_flag.returncode == 2 and "needs --fp16" in no_flag.stderr


# ----------------------------------------------------------------------------------------------- which file


@pytest.mark.parametrize(
    ("asked", "provider", "fast", "expect"),
    [
        ("auto", "cpu", True, "fp32"),  # fp16 is slower on a CPU
        ("auto", "cuda", True, "fp16"),
        ("auto", "tensorrt", True, "fp16"),
        ("auto", "cuda", False, "fp32"),  # a GPU without fast fp16 (GTX 10xx)
        ("auto", "coreml", True, "fp32"),
        ("fp32", "cuda", True, "fp32"),
        ("fp16", "cpu", False, "fp16"),
    ],
)
def test_the_engine_file_follows_provider_and_precision(
    models_dir: Path, asked: Any, provider: str, fast: bool, expect: str
) -> None:
    choice = choose_swap_model(models_dir, asked, provider, fast)
    assert wanted_precision(asked, provider, fast) == expect
    assert choice.precision == expect
    assert choice.path.name == ("inswapper_128.fp16.onnx" if expect == "fp16" else "inswapper_128.onnx")
    assert (choice.note is not None) == (asked == "fp16" and provider == "cpu")


def test_fp16_without_a_copy_falls_back_to_fp32_saying_how(tmp_path: Path) -> None:
    folder = fresh_dir(tmp_path)
    choice = choose_swap_model(folder, "auto", "tensorrt", True)
    assert choice.precision == "fp32" and choice.path.name == "inswapper_128.onnx"
    assert choice.note == ("no fp16 copy of inswapper_128.onnx; using fp32 (run 'vcamswap models convert --fp16' "
                           "for fp16)")


def test_engine_runs_and_reports_the_file_it_chose(models_dir: Path) -> None:
    engine = InswapperEngine(models_dir, provider="cpu", threads=1, precision="fp16", cuda_graph=True)
    assert engine.placement()["inswapper_128"] == "cpu (fp16, inswapper_128.fp16.onnx)"
    assert not engine.cuda_graph  # no CUDA here: plain runs, no graph
    auto = InswapperEngine(models_dir, provider="cpu", threads=1)
    assert auto.placement()["inswapper_128"] == "cpu (fp32, inswapper_128.onnx)"
    with pytest.raises(EngineUnavailable, match="unknown precision 'fp8'; choose one of auto, fp32, fp16"):
        InswapperEngine(models_dir, provider="cpu", precision="fp8")


def test_precision_setting_and_run_option() -> None:
    assert parse_settings('precision = "fp16"').precision == "fp16"
    with pytest.raises(SettingsError, match="unknown precision 'half'"):
        parse_settings('precision = "half"')
    from vcamswap.cli import build_parser

    args = build_parser().parse_args(["run", "--precision", "fp32"])
    assert args.precision == "fp32"


def test_doctor_says_which_file_and_precision(models_dir: Path, tmp_path: Path) -> None:
    r = run_cli("doctor", "--no-cameras", "--quick", "--models", str(models_dir), "--precision", "fp16",
                "--provider", "cpu", "--settings", str(tmp_path / "none.toml"))
    line = next(x for x in r.stdout.splitlines() if "precision" in x and "inswapper_128 in" in x)
    assert "inswapper_128 in fp16 from inswapper_128.fp16.onnx (precision fp16)" in line


# ----------------------------------------------------------------------------------------------- GPU options


def test_capability_decides_fast_fp16() -> None:
    assert gpu.parse_capability("8.6\n8.6\n") == (8, 6)
    assert gpu.parse_capability("[N/A]\n") is None
    assert [gpu.fast_fp16(c) for c in [(6, 1), (5, 2), (6, 0), (7, 0), (9, 0), None]] == [
        False, False, True, True, True, True]


def test_tensorrt_and_cuda_options(tmp_path: Path) -> None:
    cache = gpu.trt_cache(tmp_path, tmp_path / "inswapper_128.fp16.onnx")
    assert cache == gpu.TrtCache(tmp_path / "trt-cache" / "inswapper_128.fp16", tmp_path / "trt-cache")
    trt_chain = providers.choose("tensorrt", ALL_EPS).chain
    assert trt_chain == tuple(ALL_EPS)
    trt, cuda, cpu = providers.provider_options(trt_chain, cache, fp16=True, cuda_graph=True)
    assert trt == {
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache.engines),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache.timing),
        "trt_cuda_graph_enable": "True",
    }
    assert cuda == {} and cpu == {}  # CUDA behind TensorRT runs leftovers: a CUDA graph would be refused
    assert providers.provider_options(trt_chain, cache, fp16=False)[0]["trt_fp16_enable"] == "False"
    cuda_chain = providers.choose("cuda", ALL_EPS).chain
    assert providers.provider_options(cuda_chain, None, cuda_graph=True) == [{"enable_cuda_graph": "True"}, {}]
    assert providers.provider_options(cuda_chain, None) == [{}, {}]


class SlowTensorRT:
    """onnxruntime's constructor as a TensorRT build looks from outside: slow, and it leaves an engine file
    in the cache folder it was given. The session itself is a real CPU one on the same model."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[dict[str, Any]] = []

    def __call__(self, model: str, sess_options: ort.SessionOptions, providers: list[str],
                 provider_options: list[dict[str, str]]) -> ort.InferenceSession:
        self.calls.append({"providers": providers, "provider_options": provider_options})
        time.sleep(self.seconds)
        engines = Path(provider_options[0]["trt_engine_cache_path"])
        (engines / "TensorrtExecutionProvider_TRTKernel_graph_0_0_sm90.engine").write_bytes(b"engine")
        return ort.InferenceSession(model, sess_options, providers=["CPUExecutionProvider"])


def test_a_tensorrt_build_is_announced_and_a_warm_cache_is_quiet(
    models_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "inswapper_128.onnx"
    model.write_bytes((models_dir / "inswapper_128.onnx").read_bytes())
    choice = providers.choose("tensorrt", ALL_EPS)
    slow = SlowTensorRT(gpu.COLD_GRACE_S + 0.8)
    t0 = time.monotonic()
    session = providers.create_session(model, choice, 1, tmp_path, fp16=True, factory=slow)
    took = time.monotonic() - t0
    assert [i.name for i in session.get_inputs()] == ["target", "source"]
    assert slow.calls[0]["providers"] == ALL_EPS
    assert slow.calls[0]["provider_options"][0]["trt_timing_cache_path"] == str(tmp_path / "trt-cache")
    err = capfd.readouterr().err.splitlines()
    label = f"building the TensorRT engine for inswapper_128.onnx (first run only; cached in {tmp_path}"
    first = re.fullmatch(re.escape(label) + r".*: (\d+) s", err[0])
    done = re.fullmatch(re.escape(label) + r".*: done after (\d+) s", err[-1])
    assert first and done, err
    # The seconds shown are the build's own: after the 1 s grace (not at once), and no more than it took here.
    assert round(gpu.COLD_GRACE_S) <= int(first[1]) <= int(done[1]) <= round(took), (err, took)
    assert int(done[1]) >= round(slow.seconds), (err, took)
    assert gpu.cache_is_warm(gpu.trt_cache(tmp_path, model), model)

    providers.create_session(model, choice, 1, tmp_path, factory=slow)  # warm: loads quietly
    assert capfd.readouterr().err == ""

    os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new file: built again, said again
    providers.create_session(model, choice, 1, tmp_path, factory=slow)
    assert "building the TensorRT engine" in capfd.readouterr().err


def ticks(out: io.StringIO) -> list[int]:
    return [int(m[1]) for line in out.getvalue().splitlines() if (m := re.fullmatch(r"building: (\d+) s", line))]


def test_progress_ticks_while_the_factory_works_and_says_when_it_failed() -> None:
    out = io.StringIO()

    def works() -> int:
        """Works until a tick has counted a second or more (a hang would end at the bound and fail below)."""
        deadline = time.monotonic() + 60
        while not any(n >= 1 for n in ticks(out)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return 7

    t0 = time.monotonic()
    assert gpu.with_progress(works, "building", stream=out, every=0.25) == 7
    took = time.monotonic() - t0
    lines = out.getvalue().splitlines()
    counted = ticks(out)
    assert lines[0] == "building: 0 s" and len(counted) == len(lines) - 1 >= 2, lines  # at once, then again
    assert len(counted) <= took / 0.25 + 1, (lines, took)  # a tick each 0.25 s, no more
    assert counted == sorted(counted) and counted[-1] >= 1, lines  # the seconds count up while it works
    done = re.fullmatch(r"building: done after (\d+) s", lines[-1])
    assert done and counted[-1] <= int(done[1]) <= round(took), (lines, took)

    def broken() -> None:
        time.sleep(0.3)
        raise RuntimeError("TensorRT ran out of memory")

    out = io.StringIO()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="out of memory"):
        gpu.with_progress(broken, "building", stream=out, every=0.1)
    took = time.monotonic() - t0
    failed = re.fullmatch(r"building: failed after (\d+) s", out.getvalue().splitlines()[-1])
    assert failed and int(failed[1]) <= round(took), (out.getvalue(), took)
    quiet = io.StringIO()
    gpu.with_progress(lambda: time.sleep(0.3), "building", delay=60.0, stream=quiet)  # returns well within
    assert quiet.getvalue() == ""
