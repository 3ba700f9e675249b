"""Screenshots as perceptual hashes over a grid of tiles.

A screenshot is decoded (Pillow), turned to grey and scaled down once to a grid of 16 x 9 tiles
of 32 x 32 pixels (whatever its size: a 1920 x 1080 screen gives tiles of 120 x 120 screen
pixels). Each tile gets imagehash's perceptual hash (`phash`: the 8 x 8 lowest frequencies of
the tile's DCT, each bit set when above their median), computed for all tiles at once. Two
screenshots differ in a tile by the Hamming distance of its hashes.

Masked regions (`mask: [[x0, y0, x1, y1], ...]` in screenshot pixels, for clocks, counters,
carousels) are painted flat grey in both images before hashing, and a tile counts in the
score by the share of it that is not masked. Tiles of one colour (blank areas) hash to zero,
so that floating-point noise in their DCT is not mistaken for content.

The baseline keeps the scaled-down grey image (147,456 bytes before compression), not the PNG,
so a mask changed later applies to the baseline too.

Before anything is decoded, the image's header is checked: at most MAX_PIXELS pixels and
MAX_DECODED_BYTES bytes once decoded (pixels x the larger of the file's bytes per pixel, a PNG's
bit depth x channels, and what Pillow holds per pixel: RGB takes 4 bytes).
"""

from __future__ import annotations

import base64
import io
import math
import struct
from dataclasses import dataclass

from . import SnapshotError

GRID = (16, 9)  # tiles across, down
TILE = 32  # pixels of a tile in the scaled-down image (imagehash's phash size: 8 x 4)
HASH = 8  # bits per side of a tile's hash
NOISE = 5  # Hamming distance (of 64 bits) that is rendering noise, not a change
FULL = 20  # distance at which a tile counts as wholly changed
FLAT = 2.0  # standard deviation (grey levels) under which a tile is blank
MAX_PIXELS = 60_000_000
MAX_DECODED_BYTES = 64 * 1024 * 1024  # two 4K screens side by side in RGBA (7680 x 2160 x 4) fit
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type: grey, RGB, palette, grey+alpha, RGBA


@dataclass
class Screenshot:
    width: int
    height: int
    gray: "object"  # numpy uint8 array, GRID[1]*TILE rows x GRID[0]*TILE columns

    def to_json(self) -> dict:
        return {"kind": "png", "w": self.width, "h": self.height,
                "gray": base64.b64encode(self.gray.tobytes()).decode("ascii")}

    @classmethod
    def from_json(cls, d: dict) -> "Screenshot":
        import numpy as np

        gray = np.frombuffer(base64.b64decode(d["gray"]), dtype=np.uint8).reshape(GRID[1] * TILE, GRID[0] * TILE)
        return cls(int(d["w"]), int(d["h"]), gray)


def parse_png(data: bytes) -> Screenshot:
    """Decode a screenshot (PNG; any image Pillow reads will do); SnapshotError when it cannot."""
    if not data:
        raise SnapshotError("empty snapshot: no image")
    if data.lstrip()[:1] in (b"<", b"{", b"["):
        raise SnapshotError("not an image: this looks like HTML or JSON (send it as text/html or application/json)")
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only: nothing is decoded yet
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise SnapshotError(f"image too large ({w} x {h} pixels, at most {MAX_PIXELS:,})")
            decoded = math.ceil(w * h * max(_held_per_pixel(im.mode), _png_bytes_per_pixel(data)))
            if decoded > MAX_DECODED_BYTES:
                raise SnapshotError(f"image too large to decode ({w} x {h} pixels of {im.mode}"
                                    f"{_png_depth(data)}: {decoded:,} bytes, at most {MAX_DECODED_BYTES:,})")
            gray = im.convert("L").resize((GRID[0] * TILE, GRID[1] * TILE), Image.Resampling.BOX)
    except SnapshotError:
        raise
    except UnidentifiedImageError:
        raise SnapshotError("not an image Pillow can read (a PNG screenshot is expected)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise SnapshotError(f"the image cannot be decoded: {exc}") from None
    return Screenshot(w, h, np.asarray(gray, dtype=np.uint8))


def _held_per_pixel(mode: str) -> int:
    """Bytes Pillow holds per pixel of a decoded image: 4 for any mode of several bands."""
    from PIL import ImageMode

    try:
        desc = ImageMode.getmode(mode)
    except KeyError:
        return 4
    return 4 if len(desc.bands) > 1 else max(1, int(desc.typestr[2:]))


def _png_ihdr(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's header, None for another format."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 26:
        return None
    return struct.unpack(">BB", data[24:26])


def _png_bytes_per_pixel(data: bytes) -> float:
    """A PNG's samples per pixel, in bytes (bit depth x channels / 8); 0 for another format."""
    ihdr = _png_ihdr(data)
    if ihdr is None:
        return 0
    depth, colour = ihdr
    return depth * _PNG_CHANNELS.get(colour, 4) / 8


def _png_depth(data: bytes) -> str:
    ihdr = _png_ihdr(data)
    return f", {ihdr[0]} bits per sample" if ihdr else ""


def _mask_arrays(shot: Screenshot, mask) -> tuple["object", "object"]:
    """(grey image with masked regions painted, per-tile share not masked)."""
    import numpy as np

    gray = shot.gray
    covered = np.zeros(gray.shape, dtype=bool)
    if mask:
        sx, sy = gray.shape[1] / shot.width, gray.shape[0] / shot.height
        gray = gray.copy()
        for x0, y0, x1, y1 in mask:
            c0, c1 = int(max(0, x0) * sx), int(np.ceil(min(shot.width, x1) * sx))
            r0, r1 = int(max(0, y0) * sy), int(np.ceil(min(shot.height, y1) * sy))
            if c1 > c0 and r1 > r0:
                gray[r0:r1, c0:c1] = 128
                covered[r0:r1, c0:c1] = True
    cols, rows = GRID
    share = 1.0 - covered.reshape(rows, TILE, cols, TILE).mean(axis=(1, 3))  # rows x cols
    return gray, share


def tile_hashes(gray) -> "object":
    """The phash of every tile: a (tiles, 64) boolean array, tiles in row order."""
    import numpy as np
    from scipy.fftpack import dct

    cols, rows = GRID
    tiles = gray.reshape(rows, TILE, cols, TILE).transpose(0, 2, 1, 3).reshape(rows * cols, TILE, TILE)
    pixels = tiles.astype(np.float64)
    coef = dct(dct(pixels, axis=1), axis=2)[:, :HASH, :HASH].reshape(-1, HASH * HASH)
    med = np.median(coef, axis=1)
    bits = coef > med[:, None]
    flat = pixels.reshape(len(pixels), -1).std(axis=1) < FLAT
    bits[flat] = False
    return bits


@dataclass
class ImageDiff:
    score: float
    tiles: int
    changed: int  # tiles counted as changed (at least half)
    masked: int  # tiles wholly masked
    changes: list[str]


def compare_images(base: Screenshot, cur: Screenshot, mask=()) -> ImageDiff:
    import numpy as np

    bgray, _ = _mask_arrays(base, mask)
    cgray, share = _mask_arrays(cur, mask)
    if base.width and cur.width:
        _, bshare = _mask_arrays(base, mask)
        share = np.minimum(share, bshare)
    dist = (tile_hashes(bgray) != tile_hashes(cgray)).sum(axis=1).reshape(GRID[1], GRID[0])
    change = np.clip((dist - NOISE) / (FULL - NOISE), 0.0, 1.0)
    total = float(share.sum())
    score = float((change * share).sum() / total) if total > 0 else 0.0
    tiles = GRID[0] * GRID[1]
    masked = int((share <= 0).sum())
    changed = int(((change >= 0.5) & (share > 0)).sum())
    notes = []
    if (base.width, base.height) != (cur.width, cur.height):
        notes.append(f"screenshot size changed: {base.width}x{base.height} -> {cur.width}x{cur.height}")
    if total <= 0:
        notes.append("the whole screenshot is masked: nothing compared")
    else:
        notes.append(f"{changed} of {tiles - masked} tiles differ" + (f" ({masked} masked)" if masked else ""))
        weighted = change * share
        order = np.argsort(-weighted, axis=None)[:3]
        tw, th = cur.width / GRID[0], cur.height / GRID[1]
        for flat_i in order:
            r, c = divmod(int(flat_i), GRID[0])
            if weighted[r, c] < 0.5:
                break
            notes.append(f"region [{round(c * tw)}, {round(r * th)}, {round((c + 1) * tw)}, {round((r + 1) * th)}] "
                         f"changed (hash distance {int(dist[r, c])} of 64)")
    return ImageDiff(round(min(1.0, max(0.0, score)), 4), tiles, changed, masked, notes)
