"""Screenshots as perceptual hashes over a grid of tiles.

A screenshot is decoded (Pillow), turned to grey and scaled down once to a grid of 16 x 9 tiles
of 32 x 32 pixels (whatever its size: a 1920 x 1080 screen gives tiles of 120 x 120 screen
pixels). Each tile gets a perceptual hash as imagehash's `phash` defines it: the 8 x 8 lowest
frequencies of the tile's DCT (type II, unnormalised, down the columns and then along the
rows), each bit set when above their median. Two screenshots differ in a tile by the Hamming
distance of its hashes.

Only those 64 of the tile's 1,024 frequencies are needed, so they are computed in plain Python
from a table of cosines (8 x 32 products per column of a row of tiles, then per tile) rather
than by a full FFT: Pillow is the only library this needs. A coefficient within TIE of the
median counts as equal to it (not above): tiles of flat colours and straight edges, common on
screens, have many coefficients that are exactly zero in theory and differ from zero only by
rounding, and rounding must not set bits.

Masked regions (`mask: [[x0, y0, x1, y1], ...]` in screenshot pixels, for clocks, counters,
carousels) are painted flat grey in both images before hashing, and a tile counts in the
score by the share of it that is not masked. Tiles of one colour (blank areas) hash to zero,
so that floating-point noise in their DCT is not mistaken for content.

The baseline keeps the scaled-down grey image (147,456 bytes before compression), not the PNG,
so a mask changed later applies to the baseline too; its hashes are computed once per mask.

Before anything is decoded, the image's header is checked: at most MAX_PIXELS pixels and
MAX_DECODED_BYTES bytes once decoded (pixels x the larger of the file's bytes per pixel, a PNG's
bit depth x channels, and what Pillow holds per pixel: RGB takes 4 bytes).
"""

from __future__ import annotations

import base64
import io
import math
import struct
import sys
from array import array
from dataclasses import dataclass, field
from operator import mul

from . import SnapshotError

GRID = (16, 9)  # tiles across, down
TILE = 32  # pixels of a tile in the scaled-down image (imagehash's phash size: 8 x 4)
HASH = 8  # bits per side of a tile's hash
TIE = 1e-6  # coefficients reach about 10**6; the rounding of their sums stays under 10**-9
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
    gray: bytes  # 8-bit grey, GRID[1]*TILE rows of GRID[0]*TILE pixels
    _hashed: dict = field(default_factory=dict, repr=False, compare=False)  # mask -> (hashes, shares)

    def to_json(self) -> dict:
        return {"kind": "png", "w": self.width, "h": self.height,
                "gray": base64.b64encode(self.gray).decode("ascii")}

    @classmethod
    def from_json(cls, d: dict) -> "Screenshot":
        gray = base64.b64decode(d["gray"])
        if len(gray) != _GRAY_BYTES:
            raise SnapshotError(f"a stored screenshot of {len(gray):,} bytes, {_GRAY_BYTES:,} expected")
        return cls(int(d["w"]), int(d["h"]), gray)

    def hashed(self, mask) -> tuple[list[int], list[float]]:
        """(tile hashes, share of each tile not masked) under `mask`, computed once per mask."""
        key = tuple(tuple(r) for r in mask or ())
        got = self._hashed.get(key)
        if got is None:
            gray, share = _masked(self, key)
            got = (tile_hashes(gray), share)
            # one mask at a time (a screen's mask changes rarely), replaced whole: another thread
            # comparing with this baseline keeps what it has
            self._hashed = {key: got}
        return got


_WIDTH = GRID[0] * TILE  # of the scaled-down image
_GRAY_BYTES = GRID[0] * TILE * GRID[1] * TILE


def parse_png(data: bytes) -> Screenshot:
    """Decode a screenshot (PNG; any image Pillow reads will do); SnapshotError when it cannot."""
    if not data:
        raise SnapshotError("empty snapshot: no image")
    if data.lstrip()[:1] in (b"<", b"{", b"["):
        raise SnapshotError("not an image: this looks like HTML or JSON (send it as text/html or application/json)")
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
            gray = im.convert("L").resize((GRID[0] * TILE, GRID[1] * TILE), Image.Resampling.BOX).tobytes()
    except SnapshotError:
        raise
    except UnidentifiedImageError:
        raise SnapshotError("not an image Pillow can read (a PNG screenshot is expected)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise SnapshotError(f"the image cannot be decoded: {exc}") from None
    return Screenshot(w, h, gray)


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


def _masked(shot: Screenshot, mask) -> tuple[bytes, list[float]]:
    """(grey image with masked regions painted, per-tile share not masked, tiles in row order)."""
    cols, rows = GRID
    height = rows * TILE
    gray = bytearray(shot.gray)
    covered = bytearray(len(gray))  # 1 where masked
    sx, sy = _WIDTH / shot.width, height / shot.height
    for x0, y0, x1, y1 in mask:
        c0, c1 = int(max(0, x0) * sx), min(_WIDTH, math.ceil(min(shot.width, x1) * sx))
        r0, r1 = int(max(0, y0) * sy), min(height, math.ceil(min(shot.height, y1) * sy))
        if c1 > c0 and r1 > r0:
            for r in range(r0, r1):
                gray[r * _WIDTH + c0:r * _WIDTH + c1] = b"\x80" * (c1 - c0)
                covered[r * _WIDTH + c0:r * _WIDTH + c1] = b"\x01" * (c1 - c0)
    share = []
    for tr in range(rows):
        band = covered[tr * TILE * _WIDTH:(tr + 1) * TILE * _WIDTH]
        for tc in range(cols):
            masked = sum(band[y * _WIDTH + tc * TILE:y * _WIDTH + (tc + 1) * TILE].count(1) for y in range(TILE))
            share.append(1.0 - masked / (TILE * TILE))
    return bytes(gray), share


# DCT-II as scipy.fftpack.dct computes it (no normalisation): X[k] = 2 sum_n x[n] cos(pi k (2n + 1) / 2N),
# for the HASH lowest k only
_COS = tuple(tuple(2 * math.cos(math.pi * k * (2 * n + 1) / (2 * TILE)) for n in range(TILE)) for k in range(HASH))
_LANE = 8  # bytes: a 64-bit lane per pixel column
_SCALE = 2 ** 48  # cosines as integers; 32 rows of 255 x 2**49 stay within a signed 64-bit lane
_COS_INT = tuple(tuple(round(c * _SCALE) for c in row) for row in _COS)
_COS_SCALED = tuple(tuple(c / _SCALE for c in row) for row in _COS)  # undoes _SCALE exactly (a power of two)
_BIAS = int.from_bytes((bytes(_LANE - 1) + b"\x80") * _WIDTH, "little")  # 2**63 in every lane
_SQUARE_LOW = bytes(i * i & 0xFF for i in range(256))  # for bytes.translate
_SQUARE_HIGH = bytes(i * i >> 8 for i in range(256))
_PIXELS = TILE * TILE
_FLAT_VARIANCE = FLAT * FLAT


def _packed(low: bytes, high: bytes = b"") -> int:
    """One number holding a row of the image, a 64-bit lane per pixel (the bytes given as the
    lowest and the next byte of each lane)."""
    lanes = bytearray(_LANE * len(low))
    lanes[::_LANE] = low
    if high:
        lanes[1::_LANE] = high
    return int.from_bytes(lanes, "little")


def _lanes(number: int) -> array:
    """The signed 64-bit lanes of a number built as BIAS + sum of packed rows x weights."""
    lanes = array("q")
    lanes.frombytes((number ^ _BIAS).to_bytes(_LANE * _WIDTH, "little"))  # the bias off each lane
    if sys.byteorder == "big":
        lanes.byteswap()
    return lanes


def _down_the_columns(band: list[bytes]) -> tuple[list[array], array, array]:
    """For a band of tiles (TILE rows of pixels): the HASH lowest vertical frequencies of every
    pixel column (times _SCALE), and every column's sum and sum of squares.

    Each pixel row is packed into one integer, a lane per column, so that one multiplication
    weighs a whole row: 8 x 32 of them make the 8 frequencies of all 512 columns. The lanes
    start at 2**63, so that negative sums do not borrow from the next lane."""
    rows = [_packed(row) for row in band]
    down = [_lanes(_BIAS + sum(k * row for k, row in zip(weights, rows))) for weights in _COS_INT]
    sums = _lanes(_BIAS + sum(rows))
    squares = _lanes(_BIAS + sum(_packed(row.translate(_SQUARE_LOW), row.translate(_SQUARE_HIGH)) for row in band))
    return down, sums, squares


def _hash(coef: list[float]) -> int:
    """64 bits, each set when its coefficient is above the median (by more than TIE)."""
    ordered = sorted(coef)
    median = (ordered[len(coef) // 2 - 1] + ordered[len(coef) // 2]) / 2
    bits = 0
    for value in coef:
        bits = (bits << 1) | (value > median + TIE)
    return bits


def tile_hashes(gray: bytes) -> list[int]:
    """The phash of every tile as a 64-bit number (the first coefficient the highest bit, as
    imagehash prints it), tiles in row order; 0 for a blank tile."""
    cols, rows = GRID
    hashes = []
    for tr in range(rows):
        band = [gray[(tr * TILE + y) * _WIDTH:(tr * TILE + y + 1) * _WIDTH] for y in range(TILE)]
        down, sums, squares = _down_the_columns(band)
        for tc in range(cols):
            left, right = tc * TILE, (tc + 1) * TILE
            total, total_sq = sum(sums[left:right]), sum(squares[left:right])
            if total_sq * _PIXELS - total * total < _FLAT_VARIANCE * _PIXELS * _PIXELS:  # the variance, exactly
                hashes.append(0)
                continue
            tile = [list(map(float, part[left:right])) for part in down]
            hashes.append(_hash([sum(map(mul, across, part)) for part in tile for across in _COS_SCALED]))
    return hashes


@dataclass
class ImageDiff:
    score: float
    tiles: int
    changed: int  # tiles counted as changed (at least half)
    masked: int  # tiles wholly masked
    changes: list[str]


def compare_images(base: Screenshot, cur: Screenshot, mask=()) -> ImageDiff:
    bhashes, bshare = base.hashed(mask)
    chashes, cshare = cur.hashed(mask)
    share = [min(b, c) for b, c in zip(bshare, cshare)]  # a region masked in either counts as masked
    dist = [(b ^ c).bit_count() for b, c in zip(bhashes, chashes)]
    change = [min(1.0, max(0.0, (d - NOISE) / (FULL - NOISE))) for d in dist]
    weighted = [c * s for c, s in zip(change, share)]
    total = math.fsum(share)
    score = math.fsum(weighted) / total if total > 0 else 0.0
    tiles = GRID[0] * GRID[1]
    masked = sum(1 for s in share if s <= 0)
    changed = sum(1 for c, s in zip(change, share) if c >= 0.5 and s > 0)
    notes = []
    if (base.width, base.height) != (cur.width, cur.height):
        notes.append(f"screenshot size changed: {base.width}x{base.height} -> {cur.width}x{cur.height}")
    if total <= 0:
        notes.append("the whole screenshot is masked: nothing compared")
    else:
        notes.append(f"{changed} of {tiles - masked} tiles differ" + (f" ({masked} masked)" if masked else ""))
        tw, th = cur.width / GRID[0], cur.height / GRID[1]
        # the most changed first; among tiles wholly changed, the largest hash distance, then reading order
        for k in sorted(range(tiles), key=lambda k: (-weighted[k], -dist[k], k))[:3]:
            if weighted[k] < 0.5:
                break
            r, c = divmod(k, GRID[0])
            notes.append(f"region [{round(c * tw)}, {round(r * th)}, {round((c + 1) * tw)}, {round((r + 1) * th)}] "
                         f"changed (hash distance {dist[k]} of 64)")
    return ImageDiff(round(min(1.0, max(0.0, score)), 4), tiles, changed, masked, notes)
