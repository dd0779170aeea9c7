"""Pillow's time for what earl_image::bench_resize does: decode, convert("RGB"), smart resize.

Usage: python benches/pillow_resize.py [--iters N] FILE...   (prints images/s per target area)
"""

import argparse
import io
import math
import time

from PIL import Image


def smart_resize(data: bytes, area: int) -> Image.Image:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    scale = math.sqrt(area / (w * h))
    return image.resize((round(w * scale), round(h * scale)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    images = [open(f, "rb").read() for f in args.files]
    for area in (65536, 262144):
        start = time.perf_counter()
        for _ in range(args.iters):
            for data in images:
                smart_resize(data, area)
        seconds = time.perf_counter() - start
        count = args.iters * len(images)
        print(f"area {area:>7}  {count:>5} images  {count / seconds:>8.1f} img/s (Pillow)")


if __name__ == "__main__":
    main()
