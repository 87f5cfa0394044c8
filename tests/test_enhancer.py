"""The live face enhancer on onnxruntime with the GFPGAN-interface stand-in, on real face crops: its schedule
(model calls counted at the session seam), the cache and its key, where the crop may change, the factory,
adaptive quality dropping it first, and the `enhance` / `occlusion` settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from helpers.frames import read_frames
from helpers.media import WEBCAM, media_path

from vcamswap.cli import build_parser
from vcamswap.compose.align import align, similarity
from vcamswap.compose.enhance import FFHQ_TEMPLATE, LiveEnhancer, make_enhancer
from vcamswap.engines.lite.source import lite_template
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.live.adaptive import LADDER, degrade
from vcamswap.modelstore.manifest import ModelError
from vcamswap.modelstore.standins import ENHANCE_BOX, enhance_region, enhancer_model, save
from vcamswap.presets import PRESETS, get_preset, with_overrides
from vcamswap.settings import SettingsError, parse_settings
from vcamswap.types import SwapOutput

SIZE = 256


class Counted:
    """onnxruntime's session with its calls counted: the seam between the enhancer and the model."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session, self.calls = session, 0

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> Sequence[Any]:
        self.calls += 1
        return self.session.run(output_names, input_feed)

    def get_inputs(self) -> Sequence[Any]:
        return self.session.get_inputs()

    def get_outputs(self) -> Sequence[Any]:
        return self.session.get_outputs()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(enhancer_model(), tmp_path_factory.mktemp("enh") / "gfpgan_1.4.onnx")


@pytest.fixture
def session(model_path: Path) -> Counted:
    return Counted(ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]))


@pytest.fixture(scope="module")
def crops(detector: BlazeFaceDetector) -> list[np.ndarray]:
    """Aligned face crops of real webcam frames (the swapped crop's place in the pipeline)."""
    out = []
    for image in read_frames(media_path(WEBCAM), 8, step=4):
        found = detector.detect(image)
        assert found
        out.append(align(image, found[0].kps, lite_template(SIZE), SIZE)[0])
    return out


def swap(crop: np.ndarray) -> SwapOutput:
    return SwapOutput(crop, np.ones(crop.shape[:2], np.float32))


def test_standin_has_the_gfpgan_interface(session: Counted, crops: list[np.ndarray]) -> None:
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("input", [1, 3, 512, 512], "tensor(float)")
    assert (out.name, out.shape) == ("output", [1, 3, 512, 512])
    rgb = cv2.resize(crops[0], (512, 512))[..., ::-1].astype(np.float32) / 127.5 - 1.0  # NCHW RGB -1..1
    blob = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])
    got = session.run(None, {"input": blob})[0]
    assert got.shape == (1, 3, 512, 512) and got.min() >= -1.0 and got.max() <= 1.0
    lo, hi = ENHANCE_BOX
    outside = np.ones(got.shape, bool)
    outside[..., lo:hi, lo:hi] = False
    assert np.array_equal(got[outside], blob[outside])  # untouched outside its box
    assert np.abs(got - blob)[..., lo:hi, lo:hi].mean() > 0.005  # sharpened inside


def test_the_model_runs_every_n_calls_and_its_detail_is_reused(session: Counted, crops: list[np.ndarray]) -> None:
    enhancer = LiveEnhancer(3, session)
    key = ("digest-a", "inswapper", 0)
    outs = [enhancer.apply(swap(c), SIZE, key) for c in crops[:7]]
    assert session.calls == enhancer.runs == 3  # calls 1, 4 and 7
    details = [o.crop.astype(np.int16) - c.astype(np.int16) for o, c in zip(outs, crops, strict=False)]
    assert all(np.abs(d).max() > 0 for d in details)
    # Between runs the detail computed on the last run's crop is laid on the new crop, not a fresh one.
    fresh = LiveEnhancer(1, session).detail(crops[1])
    reused = enhancer.detail(crops[0])
    d1 = details[1].astype(np.float32)
    assert np.abs(d1 - reused).mean() < np.abs(d1 - fresh).mean()
    assert np.abs(d1 - reused).max() <= 1.0  # the same detail, up to the rounding to grey levels


def test_a_new_key_drops_the_cached_detail(session: Counted, crops: list[np.ndarray]) -> None:
    enhancer = LiveEnhancer(10, session)
    enhancer.apply(swap(crops[0]), SIZE, ("a", 1))
    enhancer.apply(swap(crops[1]), SIZE, ("a", 1))
    assert session.calls == 1
    enhancer.apply(swap(crops[2]), SIZE, ("b", 1))  # another source face: runs at once
    enhancer.apply(swap(crops[3]), SIZE, ("b", 2))  # another track: runs at once
    assert session.calls == 3
    small = cv2.resize(crops[4], (128, 128), interpolation=cv2.INTER_AREA)
    out = enhancer.apply(swap(small), 128, ("b", 2))  # same key, another crop size
    assert session.calls == 4 and out.crop.shape == (128, 128, 3)
    with pytest.raises(ValueError, match="expected 256"):
        enhancer.apply(swap(small), SIZE, ("b", 2))


def test_off_when_every_is_zero(session: Counted, crops: list[np.ndarray]) -> None:
    enhancer = LiveEnhancer(0, session)
    out = swap(crops[0])
    assert enhancer.apply(out, SIZE, ("a",)) is out and session.calls == 0
    enhancer.every = 2  # adaptive quality turns it back on: it starts afresh
    enhancer.apply(out, SIZE, ("a",))
    enhancer.every = 0
    assert enhancer.apply(out, SIZE, ("a",)) is out and session.calls == 1
    with pytest.raises(ValueError):
        LiveEnhancer(-1, session)


def test_the_crop_changes_only_where_the_model_changes_it(session: Counted, crops: list[np.ndarray]) -> None:
    enhancer = LiveEnhancer(1, session)
    out = swap(crops[0])
    mask = out.mask.copy()
    enhanced = enhancer.apply(out, SIZE, ("a",))
    assert enhanced.mask is out.mask and np.array_equal(out.mask, mask) and out.features is None
    rows, cols = enhance_region(SIZE, margin=3)
    changed = enhanced.crop.astype(np.int16) != crops[0].astype(np.int16)
    outside = changed.copy()
    outside[rows, cols] = False
    assert not outside.any()
    inside = np.abs(enhanced.crop.astype(np.int16) - crops[0])[enhance_region(SIZE)]
    assert inside.mean() > 0.5  # the face itself got sharper


def test_with_the_engine_template_the_model_sees_ffhq_framing(session: Counted, crops: list[np.ndarray]) -> None:
    """Given the crop's template, the model runs on the face re-framed as FFHQ is, and its detail lands back
    where that framing came from: the changed pixels are the stand-in's box mapped into the crop."""
    template = lite_template(SIZE) / SIZE
    enhanced = LiveEnhancer(1, session, template=template).apply(swap(crops[0]), SIZE, ("a",))
    m = similarity(template * SIZE, FFHQ_TEMPLATE * SIZE)
    rows, cols = enhance_region(SIZE)
    corners = np.array([[cols.start, rows.start], [cols.stop, rows.start], [cols.start, rows.stop],
                        [cols.stop, rows.stop]], np.float32)
    inv = cv2.invertAffineTransform(m)
    mapped = corners @ inv[:, :2].T + inv[:, 2]
    (x0, y0), (x1, y1) = np.floor(mapped.min(0)).astype(int) - 3, np.ceil(mapped.max(0)).astype(int) + 3
    changed = enhanced.crop != crops[0]
    outside = changed.copy()
    outside[max(y0, 0):y1, max(x0, 0):x1] = False
    assert changed.any() and not outside.any()
    plain = LiveEnhancer(1, session).apply(swap(crops[0]), SIZE, ("a",))
    assert not np.array_equal(plain.crop, enhanced.crop)  # control: the framing really differs


def test_make_enhancer_rules(tmp_path: Path) -> None:
    assert make_enhancer(0, tmp_path) is None
    with pytest.raises(ModelError) as e:
        make_enhancer(2, tmp_path)
    assert "\n" not in str(e.value) and "vcamswap models download enhancer" in str(e.value)
    save(enhancer_model(), tmp_path / "gfpgan_1.4.onnx")
    enhancer = make_enhancer(2, tmp_path, provider="cpu")
    assert isinstance(enhancer, LiveEnhancer) and enhancer.every == 2 and enhancer.size == 512


def test_presets_default_to_the_cpu_knobs_and_adaptive_drops_the_enhancer_first() -> None:
    for preset in PRESETS.values():
        assert preset.enhance_every == 0 and preset.occlusion == "fast"
        # Without an enhancer (or a pixel boost) the first step is what it always was.
        assert degrade(preset.with_knobs(boost=128), 1).swap_interval == preset.swap_interval + 1
    enhanced = with_overrides(get_preset("quality"), occlusion="model", enhance_every=4, boost=128)
    assert (enhanced.occlusion, enhanced.enhance_every) == ("model", 4)
    first = degrade(enhanced, 1)
    assert first.enhance_every == 0 and first.swap_interval == enhanced.swap_interval
    assert degrade(enhanced, len(LADDER)).enhance_every == 0
    assert with_overrides(enhanced) == enhanced
    with pytest.raises(ValueError, match="unknown occlusion"):
        with_overrides(enhanced, occlusion="hands")


def test_occlusion_and_enhance_settings_and_options() -> None:
    s = parse_settings('occlusion = "model"\nenhance = 3\n')
    assert (s.occlusion, s.enhance) == ("model", 3)
    assert parse_settings("").occlusion is None and parse_settings("").enhance is None
    with pytest.raises(SettingsError, match="unknown occlusion 'hands'"):
        parse_settings('occlusion = "hands"\n')
    with pytest.raises(SettingsError, match="'enhance' must be 0"):
        parse_settings("enhance = -2\n")
    args = build_parser().parse_args(["run", "--occlusion", "off", "--enhance", "5"])
    assert (args.occlusion, args.enhance) == ("off", 5)
    for bad in (["--enhance", "-1"], ["--enhance", "x"], ["--occlusion", "hands"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["run", *bad])
