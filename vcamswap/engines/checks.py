"""`vcamswap doctor` lines for the engines, their models and the execution providers."""

from __future__ import annotations

from collections.abc import Iterable

from vcamswap.checks import Context, Line
from vcamswap.console import first_line
from vcamswap.engines import EngineUnavailable
from vcamswap.engines.precision import FP16_PROVIDERS, choose_swap_model, parse_precision
from vcamswap.modelstore.manifest import (
    NEURAL_MODELS,
    ManifestError,
    ModelError,
    install_hint,
    load_manifest,
    missing_models,
    status,
)
from vcamswap.paths import embedded_model
from vcamswap.runtime import gpu

# What to install for each provider when it was asked for but this onnxruntime build lacks it.
PROVIDER_FIX = {
    "tensorrt": "pip uninstall onnxruntime && pip install onnxruntime-gpu, plus TensorRT and CUDA 12",
    "cuda": "pip uninstall onnxruntime && pip install onnxruntime-gpu (needs an NVIDIA driver and CUDA 12)",
    "coreml": "use a macOS build of onnxruntime (pip install onnxruntime on macOS 12+)",
    "directml": "pip uninstall onnxruntime && pip install onnxruntime-directml (Windows 10+)",
    "openvino": "pip uninstall onnxruntime && pip install onnxruntime-openvino",
    "cpu": "pip install onnxruntime",
}


LITE_MODELS = ("face_detection_short_range.onnx", "face_landmark.onnx")


def check_engines(ctx: Context) -> Iterable[Line]:
    try:
        paths = [embedded_model(name) for name in LITE_MODELS]
        import onnxruntime as ort

        for p in paths:
            ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        yield Line(True, "engine lite", f"embedded models load ({', '.join(LITE_MODELS)})")
    except Exception as e:  # a broken install shows here, whatever the cause
        yield Line(False, "engine lite", f"embedded models unusable: {first_line(e)}",
                   "reinstall vcamswap (pip install --force-reinstall vcamswap)")
    yield from _check_neural_models(ctx)
    if ctx.settings.engine == "inswapper" and not _neural_ready(ctx):
        yield Line(False, "engine", "settings ask for 'inswapper' but its models are not all installed: the "
                                    "daemon will use 'lite'", "vcamswap models download")
    else:
        yield Line(True, "engine", f"'{ctx.settings.engine}' selected")


def _check_neural_models(ctx: Context) -> Iterable[Line]:
    try:
        manifest = load_manifest(ctx.manifest)
    except ModelError as e:
        yield Line(False, "engine inswapper", str(e), "reinstall vcamswap")
        return
    folder = ctx.settings.models_dir()
    for spec in manifest.models.values():
        st = status(spec, folder, deep=ctx.hash_models)
        size = f"{spec.size / 1e6:.1f} MB"
        if st.state == "ok":
            yield Line(True, f"model {spec.name}", f"installed and verified ({size}, {st.path})")
        elif st.state == "present":
            yield Line(True, f"model {spec.name}", f"installed ({size}; checksum not checked, {st.path})")
        elif st.state == "missing" and spec.optional:
            hint = f"vcamswap models download {spec.role or spec.name}"
            if _asked_for(ctx, spec.role):
                yield Line(False, f"model {spec.name}", f"settings ask for the {spec.role} but it is not installed "
                                                        f"in {folder}", hint)
            else:
                yield Line(True, f"model {spec.name}", f"not installed (optional {spec.role}: '{hint}')")
        elif st.state == "missing" and ctx.settings.engine != "inswapper":
            yield Line(True, f"model {spec.name}", f"not installed (only the inswapper engine needs it: "
                                                   f"{install_hint([spec.name])})")
        elif st.state == "missing":
            yield Line(False, f"model {spec.name}", f"not installed in {folder}", install_hint([spec.name]))
        else:
            yield Line(False, f"model {spec.name}", st.detail,
                       f"vcamswap models download {spec.name} --force")
    try:
        import insightface  # noqa: F401
    except ImportError as e:
        yield Line(False, "engine inswapper", f"insightface is not importable ({e})", "pip install insightface==2.1")


def _asked_for(ctx: Context, role: str) -> bool:
    """Whether the settings turn on what an optional model does (`occlusion = "model"` or `"parser"`,
    `enhance = N`)."""
    if role == "occluder":
        return ctx.settings.occlusion == "model"
    if role == "parser":
        return ctx.settings.occlusion == "parser"
    if role == "enhancer":
        return (ctx.settings.enhance or 0) > 0
    return False


def _neural_ready(ctx: Context) -> bool:
    try:
        manifest = load_manifest(ctx.manifest)
    except ManifestError:
        manifest = None
    return not missing_models(NEURAL_MODELS, ctx.settings.models_dir(), manifest)


def check_providers(ctx: Context) -> Iterable[Line]:
    # onnxruntime loads for this check only
    from vcamswap.runtime import providers

    try:
        rep = providers.report(ctx.settings.provider)
    except providers.ProviderError as e:
        yield Line(False, "providers", str(e), f"set provider to one of {', '.join(providers.PRIORITY)}")
        return
    extra = f" (also {', '.join(rep.other)}, not used)" if rep.other else ""
    yield Line(True, "providers", f"present: {', '.join(rep.present) or 'none'}{extra}")
    if rep.choice.note:
        want = providers.parse_provider(rep.choice.requested or "cpu")
        yield Line(False, "providers", rep.choice.note, PROVIDER_FIX.get(want, "install a matching onnxruntime"))
    else:
        how = "asked for" if rep.choice.requested else "best present"
        yield Line(True, "providers", f"using {rep.choice.name} ({how}; chain {' > '.join(rep.choice.chain)})")
    yield Line(True, "providers", "lite engine models run on cpu (small models; a GPU round trip costs more)")
    yield from _placement(ctx, rep.choice.name)


def _precision(ctx: Context, chosen: str) -> Iterable[Line]:
    """Which swap model file and precision the neural engine takes here, and why not fp16 when it could."""
    asked = parse_precision(ctx.settings.precision)
    fast = gpu.fast_fp16(gpu.compute_capability()) if chosen in FP16_PROVIDERS else False
    model = choose_swap_model(ctx.settings.models_dir(), asked, chosen, fast)
    detail = f"inswapper_128 in {model.precision} from {model.path.name} (precision {asked})"
    yield Line(True, "precision", detail + (f"; {model.note}" if model.note and asked != "fp16" else ""))
    if model.note and asked == "fp16":
        yield Line(False, "precision", model.note, "vcamswap models convert --fp16")


def _placement(ctx: Context, chosen: str) -> Iterable[Line]:
    if not _neural_ready(ctx):
        yield Line(True, "providers", f"neural models would run on {chosen} (not installed)")
        return
    yield from _precision(ctx, chosen)
    if not ctx.load_models:
        yield Line(True, "providers", f"neural models will run on {chosen} (--load-models to confirm)")
        return
    # the neural engine (cv2, onnxruntime) loads only with --load-models
    from vcamswap.engines.inswapper import InswapperEngine

    try:
        engine = InswapperEngine(ctx.settings.models_dir(), ctx.settings.provider, precision=ctx.settings.precision)
    except EngineUnavailable as e:
        yield Line(False, "providers", str(e), "vcamswap models verify")
        return
    for name, where in engine.placement().items():
        ok = where.split()[0] == chosen  # the swap model adds its precision and file: "cuda (fp16, NAME)"
        yield Line(ok, "providers", f"{name} runs on {where}",
                   None if ok else f"onnxruntime could not start {chosen} for it; run with -v for its log")
