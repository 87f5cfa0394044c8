"""The manifest's GHOST entries and what they need of the model store: a CRC32 where no SHA-256 is published,
a size bound where no exact size is, and an identity model fetched along with each generator."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from vcamswap.modelstore.download import Installer
from vcamswap.modelstore.manifest import ChecksumError, ManifestError, load_manifest, status


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def write(path: Path, body: str) -> Path:
    path.write_text("schema = 1\n" + body, encoding="utf-8")
    return path


def gen_manifest(tmp_path: Path, data: bytes, bound: int) -> Path:
    return write(tmp_path / "m.toml", f'''
[models.gen]
file = "gen.onnx"
optional = true
requires = ["conv"]
max_size = {bound}
crc32 = "{crc(data)}"

[models.conv]
file = "conv.onnx"
optional = true
size = 4
crc32 = "{crc(b"conv")}"
''')


def test_a_crc32_and_a_size_bound_check_the_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    manifest = load_manifest(gen_manifest(tmp_path, data, len(data) + 100))
    spec = manifest.get("gen")
    assert not spec.exact_size and spec.sha256 == "" and spec.crc32 == crc(data)
    models = tmp_path / "models"
    good = tmp_path / "copy.onnx"
    good.write_bytes(data)
    installed = Installer(models).install_from([spec], good)
    assert [s.name for s in installed] == ["gen"] and (models / "gen.onnx").read_bytes() == data
    assert status(spec, models).state == "ok"
    # the same size, one byte changed: the CRC32 refuses it
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data[:-1] + b"\x00")
    (models / "gen.onnx").unlink()
    with pytest.raises(ChecksumError, match="CRC32"):
        Installer(models).install_from([spec], bad)
    assert not (models / "gen.onnx").exists()
    (models / "gen.onnx").write_bytes(bad.read_bytes())
    assert status(spec, models).state == "checksum"
    # past the bound: refused before hashing
    (models / "gen.onnx").unlink()
    big = tmp_path / "big.onnx"
    big.write_bytes(data + bytes(200))
    with pytest.raises(ChecksumError, match="at most"):
        Installer(models).install_from([spec], big)


def test_a_model_brings_what_it_requires_and_a_plain_download_skips_both(tmp_path: Path) -> None:
    manifest = load_manifest(gen_manifest(tmp_path, b"x", 10))
    assert [s.name for s in manifest.select(["gen"])] == ["gen", "conv"]
    assert manifest.select(None) == []


def test_an_entry_needs_a_checksum(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="needs a sha256 or a crc32"):
        load_manifest(write(tmp_path / "m.toml", '[models.a]\nfile = "a.onnx"\nsize = 3\n'))
    with pytest.raises(ManifestError, match="crc32 must be 8 hex digits"):
        load_manifest(write(tmp_path / "m.toml", '[models.a]\nfile = "a.onnx"\nsize = 3\ncrc32 = "xyz"\n'))


def test_shipped_manifest_has_the_ghost_models_as_optional_downloads() -> None:
    manifest = load_manifest()
    plain = {s.name for s in manifest.select(None)}
    for name in ("ghost_1_256", "ghost_2_256", "ghost_3_256"):
        spec = manifest.get(name)
        assert spec.optional and name not in plain and spec.requires == ("ghost_arcface",)
        assert "Apache-2.0" in spec.licence and (spec.sha256 or spec.crc32) and spec.sources
        assert [s.name for s in manifest.select([name])] == [name, "ghost_arcface"]
    own = manifest.get("ghost_arcface")  # GHOST's own ArcFace, pinned by VisoMaster's SHA-256
    assert own.file == "ghost_arcface_backbone.onnx" and own.optional and "ghost_arcface" not in plain
    assert own.sha256 == "18bb8057d1cd3ca39411b8a4dde485fa55783e08ceecaf2352f551ca39cd1357"
    assert not own.exact_size and own.size == 261500000 and len(own.sources) == 3
    conv = manifest.get("crossface_ghost")
    assert conv.exact_size and conv.size == 22083800 and len(conv.sha256) == 64 and conv.crc32 == "6cabb296"
    assert "crossface_ghost" not in plain
