#!/usr/bin/env python3
"""Regenerate every sample dataset under datasets/samples/ (deterministic).

Sources: public-domain / CC0 photographs shipped inside the scikit-image wheel
(skimage/data/). Each photo is checked against a pinned SHA-256, downscaled, edited
with Pillow (the instruction names the edit that was really applied) and written as:

  omniedit-mini/  24 triplets in the Parquet layout of TIGER-Lab/OmniEdit-Filtered-1.2M
  bad-mini/       the same layout with deliberately defective rows + a truncated shard
  jsonl-mini/     8 triplets as metadata.jsonl + images/ (JSONL + folder source kind)
  arrow-mini/     8 triplets as a `datasets` save_to_disk DatasetDict (Arrow source kind)

Rerunning with the pinned package versions (see omniedit-mini/README.md) reproduces every
file byte for byte; `--check` regenerates into a temp dir and compares.

    .venv/bin/python datasets/samples/make_samples.py [--check]
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

HERE = Path(__file__).resolve().parent
SEED = 20241204
LONG_SIDE = 320
ROW_GROUP_ROWS = 8  # the Hub files use 100 (datasets' image default); 8 exercises multi-group reads

# Versions the committed bytes were produced with. Other versions still produce valid
# samples, but encoder output (JPEG/PNG/WebP/Parquet) may differ byte-wise.
PINNED = {"pillow": "13.0.0", "pyarrow": "26.0.1", "scikit-image": "0.26.0", "datasets": "5.2.0"}


# --------------------------------------------------------------------------- photos


@dataclass(frozen=True)
class Photo:
    name: str  # file name inside skimage/data
    sha256: str  # of the file as shipped in scikit-image 0.26.0
    fmt: str  # how the sample stores the (downscaled) source: png | jpeg | webp
    subject: str  # used in instructions and reasoning


PHOTOS = [
    Photo("astronaut.png",
          "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
          "png",
          "the astronaut portrait"),
    Photo("camera.png",
          "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
          "png", "the photographer with the camera"),
    Photo("chelsea.png",
          "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
          "jpeg", "the cat"),
    Photo("coffee.png",
          "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
          "jpeg", "the cup of coffee"),
    Photo("rocket.jpg",
          "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
          "jpeg", "the rocket on its launch pad"),
    Photo("hubble_deep_field.jpg",
          "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
          "jpeg", "the deep-field galaxies"),
    Photo("retina.jpg",
          "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
          "webp", "the retina photograph"),
    Photo("brick.png",
          "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
          "png", "the brick wall"),
]


def skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-image is not installed: .venv/bin/pip install scikit-image==0.26.0")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_photo(photo: Photo) -> Image.Image:
    path = skimage_data_dir() / photo.name
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != photo.sha256:
        sys.exit(f"{path}: sha256 {digest} differs from the pinned {photo.sha256}; "
                 "install scikit-image==0.26.0 or update PHOTOS after checking the licence")
    img = Image.open(io.BytesIO(raw))
    img.load()
    scale = LONG_SIDE / max(img.size)
    size = (round(img.width * scale), round(img.height * scale))
    return img.resize(size, Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- encoding


def encode(img: Image.Image, fmt: str) -> bytes:
    """Fixed encoder settings so reruns give identical bytes."""
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=9, optimize=False)
    elif fmt == "jpeg":
        img.save(buf, "JPEG", quality=88, optimize=False, progressive=False, subsampling=2)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=80, method=4, lossless=False, exact=False)
    else:
        raise ValueError(fmt)
    return buf.getvalue()


EXT = {"png": "png", "jpeg": "jpg", "webp": "webp"}


# --------------------------------------------------------------------------- edits


def hue_shift(img: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(img.convert("RGB").convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def sepia(img: Image.Image) -> Image.Image:
    return ImageOps.colorize(ImageOps.grayscale(img), black="#2b1b0e", white="#fff4dc",
                             mid="#a47d55")


def warm_balance(img: Image.Image) -> Image.Image:
    r, g, b = img.convert("RGB").split()
    return Image.merge("RGB", (r.point(lambda v: min(255, round(v * 1.15))), g,
                               b.point(lambda v: round(v * 0.8))))


def centre_crop(img: Image.Image, keep: float = 0.6) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * keep), round(h * keep)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


@dataclass(frozen=True)
class Edit:
    task: str  # OmniEdit task value where one fits; "geometry" is ours (OmniEdit has none)
    subtask: str  # goes into the id, like OmniEdit's task_attr_mod_color_11699
    apply: Callable[[Image.Image], Image.Image]
    prompts: tuple[str, str, str]  # "{s}" = photo subject
    effect: str  # what a judge would see, for the reasoning text


EDITS = {
    "mirror": Edit("geometry", "geometry_mirror", ImageOps.mirror,
                   ("Mirror {s} horizontally.", "Flip the image left to right.",
                    "Make a horizontal mirror image of {s}."),
                   "the picture is flipped left to right"),
    "flip": Edit("geometry", "geometry_flip", ImageOps.flip,
                 ("Flip {s} upside down.", "Mirror the image vertically.",
                  "Turn the picture upside down by flipping it top to bottom."),
                 "the picture is flipped top to bottom"),
    "rotate90": Edit("geometry", "geometry_rotate",
                     lambda im: im.transpose(Image.Transpose.ROTATE_90),
                     ("Rotate {s} 90 degrees counter-clockwise.",
                      "Turn the image a quarter turn to the left.",
                      "Rotate the picture by 90 degrees anticlockwise."),
                     "the picture is rotated a quarter turn counter-clockwise"),
    "crop": Edit("geometry", "geometry_crop", centre_crop,
                 ("Crop {s} to its centre.", "Zoom in on the middle of the picture.",
                  "Cut away the borders and keep only the central part of the image."),
                 "only the central 60% of the frame is kept"),
    "grayscale": Edit("style", "style_grayscale",
                      lambda im: ImageOps.grayscale(im).convert("RGB"),
                      ("Make {s} black and white.", "Convert the photo to grayscale.",
                       "Remove all colour from the image."),
                      "all colour is removed and only luminance remains"),
    "sepia": Edit("style", "style_sepia", sepia,
                  ("Give {s} a sepia tone.", "Make the photo look like an old sepia print.",
                   "Apply a warm brown vintage tint to the image."),
                  "the image is rendered in warm brown sepia tones"),
    "invert": Edit("style", "style_invert", ImageOps.invert,
                   ("Invert the colours of {s}.", "Turn the image into its photographic negative.",
                    "Make dark areas light and light areas dark."),
                   "every tone is inverted like a film negative"),
    "blur": Edit("style", "style_blur", lambda im: im.filter(ImageFilter.GaussianBlur(3)),
                 ("Blur {s}.", "Make the whole picture soft and out of focus.",
                  "Apply a strong Gaussian blur to the image."),
                 "the whole frame is softly blurred"),
    "posterize": Edit("style", "style_posterize", lambda im: ImageOps.posterize(im, 2),
                      ("Posterize {s}.", "Reduce the image to a few flat colour levels.",
                       "Give the photo a poster-like look with banded tones."),
                      "smooth gradients are reduced to a few flat bands"),
    "contrast": Edit("style", "style_contrast",
                     lambda im: ImageEnhance.Contrast(im).enhance(1.6),
                     ("Increase the contrast of {s}.",
                      "Make the darks darker and the lights lighter.",
                      "Boost the image contrast."),
                     "contrast is clearly stronger"),
    "brighten": Edit("env", "env_light_brighten",
                     lambda im: ImageEnhance.Brightness(im).enhance(1.4),
                     ("Make {s} brighter.",
                      "Brighten the scene as if more light were falling on it.",
                      "Increase the overall brightness of the photo."),
                     "the scene is noticeably brighter"),
    "darken": Edit("env", "env_light_darken",
                   lambda im: ImageEnhance.Brightness(im).enhance(0.6),
                   ("Make {s} darker.", "Darken the scene as if it were dusk.",
                    "Reduce the overall brightness of the photo."),
                   "the scene is noticeably darker"),
    "hue": Edit("attribute_modification", "attr_mod_color", lambda im: hue_shift(im, 120),
                ("Shift the colours of {s} around the colour wheel by a third.",
                 "Recolour the image so reds become greens and blues become reds.",
                 "Rotate the hue of the whole picture by 120 degrees."),
                "all hues are rotated by about 120 degrees"),
    "warm": Edit("attribute_modification", "attr_mod_color", warm_balance,
                 ("Give {s} a warmer colour balance.",
                  "Make the light in the picture look warmer and less blue.",
                  "Shift the white balance of the photo towards orange."),
                 "the colour balance is warmer, with stronger reds and weaker blues"),
    "saturate": Edit("attribute_modification", "attr_mod_color",
                     lambda im: ImageEnhance.Color(im).enhance(1.9),
                     ("Make the colours of {s} more vivid.", "Increase the colour saturation.",
                      "Make the picture more colourful."),
                     "colours are much more saturated"),
}

# (photo index, edit, stored format of the edited image) -> 24 triplets, 3 per photo.
PLAN = [
    (0, "mirror", "png"), (0, "hue", "png"), (0, "sepia", "jpeg"),
    (1, "invert", "png"), (1, "contrast", "png"), (1, "crop", "png"),
    (2, "grayscale", "jpeg"), (2, "blur", "webp"), (2, "brighten", "jpeg"),
    (3, "rotate90", "jpeg"), (3, "posterize", "png"), (3, "saturate", "jpeg"),
    (4, "darken", "jpeg"), (4, "mirror", "jpeg"), (4, "warm", "webp"),
    (5, "invert", "jpeg"), (5, "blur", "jpeg"), (5, "crop", "jpeg"),
    (6, "grayscale", "webp"), (6, "rotate90", "jpeg"), (6, "contrast", "jpeg"),
    (7, "brighten", "png"), (7, "posterize", "webp"), (7, "flip", "png"),
]


# --------------------------------------------------------------------------- rows


def scores(rng: random.Random) -> tuple[int, int, int, float]:
    """Plausible VIEScore-style scores; overall = sqrt(min(SC) * PQ) as in VIEScore."""
    sc1, sc2, pq_ = rng.randint(7, 10), rng.randint(6, 10), rng.randint(7, 10)
    return sc1, sc2, pq_, math.sqrt(min(sc1, sc2) * pq_)


def sc_text(edit: Edit, subject: str, sc1: int, sc2: int) -> str:
    return (f"Editing success: the instruction asks for one global change to {subject} and in the "
            f"edited image {edit.effect}; the content of the scene is otherwise unchanged "
            f"({sc1}/10). Over-editing: nothing beyond the requested change was altered "
            f"({sc2}/10).")


def pq_text(pq_: int) -> str:
    return ("The edited image is free of artifacts, distortions and unnatural textures "
            f"beyond the requested effect ({pq_}/10).")


def image_struct(data: bytes | None, path: str | None = None) -> dict:
    return {"bytes": data, "path": path}


def build_good_rows() -> tuple[list[dict], dict[int, Image.Image]]:
    rng = random.Random(SEED)
    sources = {i: load_photo(p) for i, p in enumerate(PHOTOS)}
    src_bytes = {i: encode(sources[i], PHOTOS[i].fmt) for i in sources}
    rows = []
    for n, (pi, name, fmt) in enumerate(PLAN):
        edit, photo, src = EDITS[name], PHOTOS[pi], sources[pi]
        edited = edit.apply(src)
        sc1, sc2, pq_, o = scores(rng)
        rows.append({
            "omni_edit_id": f"task_{edit.subtask}_{100000 + n}",
            "task": edit.task,
            "src_img": image_struct(src_bytes[pi]),
            "edited_img": image_struct(encode(edited, fmt)),
            "edited_prompt_list": [p.format(s=photo.subject) for p in edit.prompts],
            "width": src.width,
            "height": src.height,
            "sc_score_1": sc1,
            "sc_score_2": sc2,
            "sc_reasoning": sc_text(edit, photo.subject, sc1, sc2),
            "pq_score": pq_,
            "pq_reasoning": pq_text(pq_),
            "o_score": o,
        })
    return rows, sources


# --------------------------------------------------------------------------- OmniEdit Parquet

IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
OMNIEDIT_SCHEMA = pa.schema([
    ("omni_edit_id", pa.string()),
    ("task", pa.string()),
    ("src_img", IMAGE_STRUCT),
    ("edited_img", IMAGE_STRUCT),
    ("edited_prompt_list", pa.list_(pa.string())),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("sc_score_1", pa.int64()),
    ("sc_score_2", pa.int64()),
    ("sc_reasoning", pa.string()),
    ("pq_score", pa.int64()),
    ("pq_reasoning", pa.string()),
    ("o_score", pa.float64()),
])


def hf_features() -> dict:
    """The `huggingface` schema metadata in the form `datasets` 3.x (current when the Hub
    files were uploaded, Dec 2024) writes it: a legacy `Sequence` list, `Image` images."""
    value = {"string": {"dtype": "string", "_type": "Value"},
             "int64": {"dtype": "int64", "_type": "Value"},
             "float64": {"dtype": "float64", "_type": "Value"}}
    image = {"_type": "Image"}
    return {
        "omni_edit_id": value["string"], "task": value["string"],
        "src_img": image, "edited_img": image,
        "edited_prompt_list": {"feature": value["string"], "_type": "Sequence"},
        "width": value["int64"], "height": value["int64"],
        "sc_score_1": value["int64"], "sc_score_2": value["int64"],
        "sc_reasoning": value["string"], "pq_score": value["int64"],
        "pq_reasoning": value["string"], "o_score": value["float64"],
    }


def omniedit_table(rows: list[dict]) -> pa.Table:
    schema = OMNIEDIT_SCHEMA.with_metadata(
        {"huggingface": json.dumps({"info": {"features": hf_features()}})})
    return pa.Table.from_pylist(rows, schema=schema)


def parquet_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(omniedit_table(rows), buf, row_group_size=ROW_GROUP_ROWS,
                   compression="snappy", write_statistics=True)
    return buf.getvalue()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --------------------------------------------------------------------------- bad-mini


def bad_rows(good: list[dict], sources: dict[int, Image.Image]) -> list[tuple[dict, str]]:
    """Rows with one defect each (plus good ones), with the reject reason we expect."""
    rng = random.Random(SEED + 1)

    def row(base: int, new_id: str, **changes) -> dict:
        r = json.loads(json.dumps({k: v for k, v in good[base].items()
                                   if k not in ("src_img", "edited_img")}))
        r["src_img"], r["edited_img"] = dict(good[base]["src_img"]), dict(good[base]["edited_img"])
        r["omni_edit_id"] = new_id
        r.update(changes)
        return r

    # A PNG signature followed by noise: sniffs as PNG, fails to decode.
    garbage = b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(2048))
    jpeg_edited = good[6]["edited_img"]["bytes"]  # chelsea grayscale, stored as JPEG
    wide_src = centre_band(sources[3])
    wide_edit = ImageEnhance.Brightness(wide_src).enhance(1.4)

    return [
        (row(0, "bad_good_000"), "ok"),
        (row(1, "bad_corrupt_src_001", src_img=image_struct(garbage)),
         "source image does not decode (PNG signature followed by random bytes)"),
        (row(6, "bad_truncated_jpeg_002",
             edited_img=image_struct(jpeg_edited[: len(jpeg_edited) * 6 // 10])),
         "target image does not decode: JPEG truncated at 60% (no EOI marker)"),
        (row(9, "bad_zero_byte_003", src_img=image_struct(b"")),
         "source image is empty (0 bytes)"),
        (row(12, "bad_empty_instruction_004", edited_prompt_list=[""]),
         "instruction is empty"),
        (row(13, "bad_blank_instruction_005", edited_prompt_list=[" \t \n  "]),
         "instruction is only whitespace"),
        (row(15, "bad_nan_score_006", o_score=float("nan")), "o_score is NaN"),
        (row(2, "bad_good_000"), "duplicate id bad_good_000 (first occurrence, row 0, is kept)"),
        (row(8, "bad_aspect_6to1_008", src_img=image_struct(encode(wide_src, "jpeg")),
             edited_img=image_struct(encode(wide_edit, "jpeg")),
             width=wide_src.width, height=wide_src.height,
             edited_prompt_list=[p.format(s="the cup of coffee")
                                 for p in EDITS["brighten"].prompts],
             sc_reasoning=sc_text(EDITS["brighten"], "the cup of coffee",
                                  good[8]["sc_score_1"], good[8]["sc_score_2"])),
         "aspect ratio 6:1 (480x80) exceeds the allowed maximum"),
        (row(18, "bad_null_src_009", src_img=None), "source image is null"),
        (row(19, "bad_path_only_010", edited_img=image_struct(None, "images/missing_edit.jpg")),
         "target image has no embedded bytes (path-only struct, file not shipped)"),
        (row(21, "bad_no_instruction_011", edited_prompt_list=[]),
         "no instruction (edited_prompt_list is empty)"),
        (row(22, "bad_good_012"), "ok"),
        (row(23, "bad_good_013"), "ok"),
    ]


def centre_band(img: Image.Image) -> Image.Image:
    """A 6:1 panorama strip (480x80) cut from the middle of a photo."""
    w = img.width
    h = round(w / 6)
    top = (img.height - h) // 2
    return img.crop((0, top, w, top + h)).resize((480, 80), Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- writers


def write_omniedit_mini(out: Path, rows: list[dict]) -> None:
    write(out / "omniedit-mini/data/train-00000-of-00001.parquet", parquet_bytes(rows))


def write_bad_mini(out: Path, rows: list[dict], sources) -> list[tuple[dict, str]]:
    bad = bad_rows(rows, sources)
    write(out / "bad-mini/data/train-00000-of-00002.parquet", parquet_bytes([r for r, _ in bad]))
    # A whole shard cut in half: the footer (and its PAR1 trailer) is gone.
    whole = parquet_bytes(rows[:4])
    write(out / "bad-mini/data/train-00001-of-00002.parquet", whole[: len(whole) // 2])
    return bad


JSONL_ROWS = [0, 3, 6, 7, 10, 14, 18, 23]  # png/jpeg/webp on both sides
ARROW_ROWS = [1, 4, 8, 9, 12, 16, 19, 22]


def sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise ValueError("unknown image format")


def write_jsonl_mini(out: Path, rows: list[dict]) -> None:
    lines = []
    for i in JSONL_ROWS:
        r = rows[i]
        rid = r["omni_edit_id"]
        rec = {"id": rid}
        for key, col, tag in (("source", "src_img", "src"), ("target", "edited_img", "tgt")):
            data = r[col]["bytes"]
            rel = f"images/{rid}.{tag}.{EXT[sniff(data)]}"
            write(out / "jsonl-mini" / rel, data)
            rec[key] = rel
        rec["instruction"] = r["edited_prompt_list"][0]
        lines.append(json.dumps(rec, ensure_ascii=False))
    write(out / "jsonl-mini/metadata.jsonl", ("\n".join(lines) + "\n").encode())


def write_arrow_mini(out: Path, rows: list[dict]) -> None:
    from datasets import Dataset, DatasetDict, DatasetInfo, Features, Value
    from datasets import Image as HFImage

    features = Features({"id": Value("string"), "source_image": HFImage(),
                         "edited_image": HFImage(), "edit_instruction": Value("string")})
    picked = [rows[i] for i in ARROW_ROWS]
    table = pa.table({
        "id": pa.array([r["omni_edit_id"] for r in picked], pa.string()),
        "source_image": pa.array([r["src_img"] for r in picked], IMAGE_STRUCT),
        "edited_image": pa.array([r["edited_img"] for r in picked], IMAGE_STRUCT),
        "edit_instruction": pa.array([r["edited_prompt_list"][0] for r in picked], pa.string()),
    })
    # An explicit fingerprint keeps state.json identical across runs.
    train = Dataset(table, info=DatasetInfo(features=features), split="train",
                    fingerprint="earl-arrow-mini-v1")
    target = out / "arrow-mini/data"
    if target.exists():
        shutil.rmtree(target)
    DatasetDict({"train": train}).save_to_disk(str(target))


# --------------------------------------------------------------------------- verification


def decodes(data: bytes | None) -> bool:
    try:
        with Image.open(io.BytesIO(data or b"")) as im:
            im.load()
        return True
    except Exception:  # any decoder failure means "does not decode"
        return False


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


def verify(out: Path) -> None:
    """Read everything back the way consumers will and fail loudly on any surprise."""
    from datasets import Image as HFImage, load_dataset, load_from_disk

    # omniedit-mini: exact schema, HF metadata, decodable images, sizes match the columns.
    path = out / "omniedit-mini/data/train-00000-of-00001.parquet"
    table = pq.read_table(path)
    assert table.schema.remove_metadata().equals(OMNIEDIT_SCHEMA), table.schema
    assert b"huggingface" in table.schema.metadata
    rows = table.to_pylist()
    assert len(rows) == len(PLAN) and len({r["omni_edit_id"] for r in rows}) == len(rows)
    assert pq.ParquetFile(path).num_row_groups == math.ceil(len(PLAN) / ROW_GROUP_ROWS)
    formats = set()
    for r in rows:
        assert image_size(r["src_img"]["bytes"]) == (r["width"], r["height"]), r["omni_edit_id"]
        assert decodes(r["edited_img"]["bytes"]), r["omni_edit_id"]
        formats |= {sniff(r["src_img"]["bytes"]), sniff(r["edited_img"]["bytes"])}
        assert len(r["edited_prompt_list"]) == 3 and 0 < r["o_score"] <= 10
    assert formats == {"png", "jpeg", "webp"}, formats
    hf = load_dataset("parquet", data_files=str(path), split="train")
    assert isinstance(hf.features["src_img"], HFImage) and hf.num_rows == len(PLAN)
    assert hf[0]["edited_img"].size == image_size(rows[0]["edited_img"]["bytes"])

    # bad-mini: shard 0 reads and each defect is really there; shard 1 is unreadable.
    bad = {r["omni_edit_id"] + f"#{i}": r for i, r in enumerate(
        pq.read_table(out / "bad-mini/data/train-00000-of-00002.parquet").to_pylist())}
    ids = [k.split("#")[0] for k in bad]
    assert ids.count("bad_good_000") == 2
    by_id = {k.split("#")[0]: v for k, v in reversed(list(bad.items()))}
    assert not decodes(by_id["bad_corrupt_src_001"]["src_img"]["bytes"])
    assert not decodes(by_id["bad_truncated_jpeg_002"]["edited_img"]["bytes"])
    assert by_id["bad_zero_byte_003"]["src_img"]["bytes"] == b""
    assert by_id["bad_empty_instruction_004"]["edited_prompt_list"] == [""]
    assert by_id["bad_blank_instruction_005"]["edited_prompt_list"][0].strip() == ""
    assert math.isnan(by_id["bad_nan_score_006"]["o_score"])
    w, h = image_size(by_id["bad_aspect_6to1_008"]["src_img"]["bytes"])
    assert w == 6 * h
    assert by_id["bad_null_src_009"]["src_img"] is None
    assert by_id["bad_path_only_010"]["edited_img"]["bytes"] is None
    assert by_id["bad_no_instruction_011"]["edited_prompt_list"] == []
    for good_id in ("bad_good_000", "bad_good_012", "bad_good_013"):
        assert decodes(by_id[good_id]["src_img"]["bytes"])
    try:
        pq.read_table(out / "bad-mini/data/train-00001-of-00002.parquet")
    except pa.ArrowInvalid:
        pass
    else:
        raise AssertionError("truncated shard unexpectedly readable")

    # jsonl-mini: every referenced file exists and decodes.
    lines = (out / "jsonl-mini/metadata.jsonl").read_text().splitlines()
    assert len(lines) == len(JSONL_ROWS)
    for line in lines:
        rec = json.loads(line)
        assert list(rec) == ["id", "source", "target", "instruction"]
        for key in ("source", "target"):
            assert decodes((out / "jsonl-mini" / rec[key]).read_bytes()), rec

    # arrow-mini: loads with datasets and decodes to PIL images.
    ds = load_from_disk(str(out / "arrow-mini/data"))["train"]
    assert ds.num_rows == len(ARROW_ROWS)
    for ex in ds:
        assert ex["source_image"].size and ex["edited_image"].size and ex["edit_instruction"]

    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert total < 6 * 1024 * 1024, f"samples grew to {total} bytes"


def generate(out: Path) -> None:
    rows, sources = build_good_rows()
    write_omniedit_mini(out, rows)
    write_bad_mini(out, rows, sources)
    write_jsonl_mini(out, rows)
    write_arrow_mini(out, rows)
    verify(out)


def check_versions() -> None:
    for pkg, want in PINNED.items():
        got = importlib.metadata.version(pkg)
        if got != want:
            print(f"warning: {pkg} {got} != pinned {want}; output bytes may differ",
                  file=sys.stderr)


GENERATED = ("omniedit-mini/data", "bad-mini/data", "jsonl-mini/images",
             "jsonl-mini/metadata.jsonl", "arrow-mini/data")


def files_under(root: Path) -> set[Path]:
    found = set()
    for sub in GENERATED:
        p = root / sub
        found |= {p.relative_to(root)} if p.is_file() else {
            f.relative_to(root) for f in p.rglob("*") if f.is_file()}
    return found


def tree_diff(a: Path, b: Path) -> list[str]:
    """Generated files that are missing, extra or different between two roots."""
    fa, fb = files_under(a), files_under(b)
    return sorted(str(f) for f in fa ^ fb) + sorted(
        str(f) for f in fa & fb if not filecmp.cmp(a / f, b / f, shallow=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with the committed files")
    args = ap.parse_args()
    check_versions()
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            diffs = tree_diff(HERE, Path(tmp))
        if diffs:
            sys.exit("differs from committed samples: " + ", ".join(diffs))
        print("samples reproduce byte for byte")
    else:
        generate(HERE)
        print(f"wrote samples under {HERE}")


if __name__ == "__main__":
    main()
