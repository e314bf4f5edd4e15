#!/usr/bin/env python3
"""Writes tests/data/celebahq_tiny/: 12 small procedural images in CelebA-HQ's distributed layout.

NOT faces and not derived from CelebA or CelebA-HQ: each image is a colour gradient with a few
discs drawn from a fixed seed, so the fixture can be committed and regenerated anywhere. What it
copies from the real data is the layout (one flat folder of numbered files, 0.jpg, 1.jpg, ...) and
the file formats (baseline JPEG with 4:2:0 chroma, PNG), plus some hostile cases:

  file     size (h x w)  format             why
  0.jpg    64 x 64       JPEG q90           the common case
  1-6.jpg  48/40 square  JPEG q90           several sizes
  7.jpg    48 x 40       JPEG q90           not square: centre-cropped, "bad" if center_crop is false
  8.png    48 x 48       PNG RGBA           alpha must be dropped
  9.png    40 x 40       PNG greyscale (L)  must become R = G = B
  10.png   24 x 24       PNG RGB            below 32: upscaled at resolution 32
  11.png   64 x 64       PNG RGB            exact corners checked by the C++ test

Pixel formulas (exact in the PNGs, approximate in the JPEGs): background
  R = round(255 * x / (w - 1)), G = round(255 * y / (h - 1)), B = (37 * k) % 256
for image k (for the greyscale 9.png: round(255 * (x + y) / (w + h - 2))), with Python's round
(half to even). Discs stay inside the central half of the image, so the four corners are always
background. The RGBA image's alpha is a gradient 255 - round(191 * x / (w - 1)) that the loader
must ignore.

Regenerate with `python3 tests/data/make_celebahq_tiny.py` (needs Pillow); the C++ tests read the
committed files, so a different Pillow JPEG encoder only matters if you regenerate.
"""
import os
import random

from PIL import Image, ImageDraw

SIZES = {0: (64, 64), 1: (48, 48), 2: (40, 40), 3: (48, 48), 4: (64, 64), 5: (40, 40), 6: (48, 48),
         7: (48, 40), 8: (48, 48), 9: (40, 40), 10: (24, 24), 11: (64, 64)}  # k: (h, w)
SEED = 1234


def background(k, h, w):
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (round(255 * x / (w - 1)), round(255 * y / (h - 1)), (37 * k) % 256)
    return img


def draw_discs(img, rng):
    w, h = img.size
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 3)):
        r = rng.randint(2, min(w, h) // 8)
        cx = rng.randint(w // 4 + r, 3 * w // 4 - r)
        cy = rng.randint(h // 4 + r, 3 * h // 4 - r)
        fill = tuple(rng.randrange(256) for _ in range(len(img.getbands())))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill if len(fill) > 1 else fill[0])


def make(k):
    h, w = SIZES[k]
    rng = random.Random(SEED + k)
    if k == 9:
        img = Image.new("L", (w, h))
        px = img.load()
        for y in range(h):
            for x in range(w):
                px[x, y] = round(255 * (x + y) / (w + h - 2))
    else:
        img = background(k, h, w)
    draw_discs(img, rng)
    if k == 8:
        alpha = Image.new("L", (w, h))
        apx = alpha.load()
        for y in range(h):
            for x in range(w):
                apx[x, y] = 255 - round(191 * x / (w - 1))
        img.putalpha(alpha)
    return img


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "celebahq_tiny")
    os.makedirs(out_dir, exist_ok=True)
    for k in SIZES:
        img = make(k)
        if k <= 7:
            img.save(os.path.join(out_dir, f"{k}.jpg"), quality=90, subsampling=2)  # 2 = 4:2:0
        else:
            img.save(os.path.join(out_dir, f"{k}.png"), optimize=True)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"wrote {len(SIZES)} images to {out_dir} ({total} bytes in the folder)")


if __name__ == "__main__":
    main()
