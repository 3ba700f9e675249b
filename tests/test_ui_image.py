"""Screenshot hashes: the perceptual hash of each tile on Pillow alone.

The expected hashes below were computed with the former implementation, numpy and
scipy.fftpack's DCT (imagehash's phash definition, tile by tile), and are kept here so that
the hashes, and with them every drift score, stay what they were. Each is a tile's 64 bits
as imagehash prints them, tiles in reading order.
"""

from __future__ import annotations

import functools
import io
import math
import random

import pytest

from botwatch.ui import SnapshotError
from botwatch.ui.image import GRID, Screenshot, compare_images, parse_png, tile_hashes


def rectangles() -> bytes:
    """Flat colours and straight edges, as application screens are: many tiles whose rows (or
    columns) are all alike, where most DCT coefficients are exactly zero."""
    from PIL import Image, ImageDraw

    rnd = random.Random(3)
    im = Image.new("RGB", (1920, 1080), (245, 246, 248))
    d = ImageDraw.Draw(im)
    d.rectangle([1500, 0, 1920, 120], fill=(30, 30, 60))
    for _ in range(80):
        x, y = rnd.randint(0, 1600), rnd.randint(140, 1020)
        d.rectangle([x, y, x + rnd.randint(60, 300), y + rnd.randint(12, 50)],
                    fill=tuple(rnd.randint(0, 200) for _ in range(3)))
    return _png(im)


@functools.cache
def gradients() -> bytes:
    """Smooth shading with noise, 683 x 384 (scaled by a factor that is not a whole number)."""
    from PIL import Image

    rnd = random.Random(7)
    w, h = 683, 384
    px = bytearray()
    for y in range(h):
        for x in range(w):
            base = 128 + 90 * math.sin(x / 41 + y / 67) * math.cos(y / 29 - x / 113)
            px += bytes(max(0, min(255, int(base + off + rnd.randint(-25, 25)))) for off in (0, 30, -40))
    return _png(Image.frombytes("RGB", (w, h), bytes(px)))


def _png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


MASK = [[50, 25, 350, 200], [600, 0, 683, 45]]  # in the 683 x 384 screenshot's pixels

RECTANGLES = """\
0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000
0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 c400000000000000 0000000000000000
0000000000000000 0000000000000000 0000000000000000 0000000000000000 d5aa55aa55aa5455 d2ad2dd252ad292d 80ff807f00ff8783
d5e3aa145563639c b4cacb35262a34db d5d5aa2ac0d555aa aaaad555952a2ad5 99e6e61962e618e6 ff807f80007f807f f18e8ef1710cf10e
8af195782a0f6a97 8080000080800000 8ef10f0ef1710f0e 8000000000000000 d85ab6a56d4d5252 9c1ce3e363631c9c 8155fcfc050155fd
8000000000000000 c4916aab6e93934e a5daa4dab199c664 9964e69999e66619 80c03fffff3b8001 daa55aa55aa552a5 d6a956d629562956
dbdb5ada5a5a4840 d2fa293d027a555a 879e871e8f0f0e07 aad5d4aad52a2a55 8e0ef1f10e0ff10e 0000000000000000 e699669966996691
add22dd22dd225d2 d5856aaa6a55d570 a956a9d6a9565629 f846c6fccc4c466c 80a0bf7f3f21007f 807f7f007f707f00 b333333333333332
dd4b5296aad449a9 87873c78f8470787 934c3371ec1799c6 81030303033fffff ccb34cb34cb34cb1 8080008000800080 87f807f807f807f0
0000000000000000 c666675b989ccc4c ad2d2d21a1ad2dad a534ac43d8d8d3d3 a6c9c926266b2fc9 ff807e7f807f8080 8080000080008080
da52adada10ef0a5 8000808080000080 9919e6e6e63a2a45 d252ad2d2dd2ad29 d56aaa9532b2b532 9919e66699996798 c44cea6af1f171e0
9c63e31c639c1ce3 87078707787878fc 87f8f807070f07f8 ab2bd0d4d42b2b2b e6b9526691a9526e 8080000080800000 80ff2ac02fd52ad5
f87032868fcd96b2 ec33c493cc33cc93 8800e0e3f11e1fff 0000000000000000 0000000000000000 0000000000000000 e996698696699669
0000000000000000 d252adad525f5252 8000808000000000 8000808000000000 870ff8f8071f0707 0000000000000000 da52a5a55a5a5656
aa2ad5d52a2a5557 aa2b2b2b2b2b2b2b ff7f808080007f7f ec6c4ccece6c6c24 f19c1c711c9c399d d5aad055aad155aa c3fc855885b443fc
98e3e318e3e318e3 df6b80d03f3e3680 8e1cf1718e8ee171 d47f2aa8d5d5a02a f00e8ef0848e70ff ab2bd454d4ab54d4 b6c9c936c9c93632
df36c0803f5fa036 d2d2a5ad2d2dd252 80e1bfdb80755f21 b4a9d3cbd62434a9 b2cd36d936c833c4 da5a5a5a5a5a525a b34c334c334e336e
f08f70718f708f70 b8c3877acb875a24 0000000000000000 e3779c9c7c721860 b939eeee2a296a10 0000000000000000 0000000000000000
0000000000000000 0000000000000000 c94d4d4d4d4d4d4d 8000000000000000 8e1e1e1e1e1e1e1e 0000000000000000 0000000000000000
d5555554aaaaaa55 b3333331cccccc33 0000000000000000 fe7c81817c78607c 8000808000000000 9313ecec13073b33 0000000000000000
e767679898986266 8000008080800000 810101fffeff0703 0000000000000000
""".split()
GRADIENTS = """\
80876c86479b57e7 d59309c52b69397a d7a237a3283952ea f9869990b8d791a9 a8d5b8a185d1b9cd 80d793c6d5d2aa4e dc7fe2728041b27c
fa29f725c71c9a40 ae2a79335a44f24b 80007eb77f96056f d52c2f9625296763 f7ab21b73022316d fa81869ab9a389e9 aac2a2f591adccd2
81d78bd1eb05f40d d57b865299569c61 aa88afbde2a788a4 80df98c8a3cfe174 d577d8558112d655 ff6bd067e060881d aa27df0fda251701
822d671e57e63c43 813f7c0717741b4b d72a0079385e2f3e fda81d8f02a621f6 ad8082ae11db65f7 80d7b8f4ac91b3c3 d571b556809b8de2
ff6c857bba408243 aa14d974c17dea89 804d625077747f5d d17b70703b7e0654 aa35d134b707960f 8055cd60fafb6cc4 80767a5e6d4d11ea
d723036b360b55e5 ff882c0f2c2177b1 ab872d91358974e5 81d62cd4c8de37d4 d5d480c5b1fe8c39 ff798974841bc328 aa52fc058eee8b0b
8049da52dbeaff40 80717c46754f9a57 d42a45260f3d5f0f fc225e2e3a0b4f15 a88c33996eafa82d 86d80eea44937cf9 ff205e035a383d2d
ab8316ca3db46ca3 80d52e9a4cf4c2fe d5df81cb23d82c70 fdfe86f0a6388610 aad987959f11e036 a258e670f301fc6d 8178d952d4535e76
d32e7e2930634e27 fd2157302a2f616b aa8973ea3e954c92 80c53edd51a94af3 d4d515ce3f6a0135 ffed80b08154ba27 aad2a2f8ab21a5d5
8ad7eec8e184e598 fde88ed4819e9e08 ffd88982d5f29520 a8d4c7f4d531c385 807bc84afb46e46b d5727f435442ca78 f82a7b32761d482d
a80a6bad26ae5fa8 838063bd7a8b37d1 d5d227de08c5541f fdac889b6ac404fa fe838986a7d3a48a a3d7c1d380d8ab87 807cc077bc3fc81b
d777c1708352896e fa2c750bcb07903d aa0a793b31cb4ee2 d274d840cd618f6f ef2bd326e5304c70 a928512e46b375dd 808e62eb74f970e5
d1d02acc33945fd6 dfa225b503c20ff8 ffa08a93a4d98ae8 a9c3ad9cb8a7a5a0 81d7fbf0a123998c d479e84ea461dc4d fa26d724f133f022
aa026c367d1d2b3d 800a6f3c77457477 d53f4975016c0cdd f5ab28b332834f8c ff8922b1f88492f8 900223786f3e3e77 d5a83067790f2ab6
fe8817a02efc4e83 aa85bf8e83b116d1 87d6b0ffa8e481c8 d67f866ac95c9c02 fa78f023f328e154 ab27d02dd90d9539 821a7e3079cd687e
d50d7d2d06962a7a d728312b4b4c6be9 ffa000bf2e0f249e ae8681f63bb36582 84de88e4c0dbef89 d77daa669d0488e8 ff69e012c4deb023
80d6abed84f981d3 d4dea5e282dc85ac fe7de03aa6188961 aa07f530c363dae4 a857f734c03a16ec 806e787f720b5955 d5285b3e5b2b4869
ffaa19387c48740e a28426b3769d31fa 81d32cce0ec3aaaf d5fea0cc810b86dd f77e830d90bf8282 aa5cd21cf616ed88 8154ea58c173fa9b
816f7e4e6e61213c dd28512d7e2b481f a259c749eecdb302 807756706f40e2fe d720742b7d43471e ff20690179375556 ae8a2aa26acc19ef
80d922cf7fb48cc6 d5d487e22da603f4 f7f984dc961e9408 bbc6ce05bac1c383 aa59f1aae8d2f031 817fc5587730ca5a d52a4735441e793e
fb237e267b014f10 a0817ea376a8761f 80d924d53bed2da3 d5f828852bdb961c
""".split()
GRADIENTS_MASKED = """\
80876c86479b57e7 fe813d7c81817978 d5d72223f1f1322a fd798888795191b9 a1a1dcf52111ddcd 91d4d7d791907a4a dc5f73b2d04038f8
f9692585454b9adc aa2a59f34e44f2ca 80007eb77f96056f d52c2f9625296763 f7ab21b73022316d fa81869ab9a389e9 aac2a2f591adccd2
ffffff000000ff00 0000000000000000 aa88afbde2a788a4 e0fef8f000ff001f 0000000000000000 0000000000000000 0000000000000000
0000000000000000 0000000000000000 0000000000000000 e1877cae72ae2186 ad8082ae11db65f7 80d7b8f4ac91b3c3 d571b556809b8de2
ff6c857bba408243 aa14d974c17dea89 805d625877746b5d d16f78202d7e0e5c aa35d134b707960f 8101fce0fffff000 0000000000000000
0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 f8798774845bc3a8 aa52fc058eee8b0b
8049da52dbeaff40 80717c46754f9a57 d42a45260f3d5f0f fc225e2e3a0b4f15 a88c33996eafa82d 86d80eea44937cf9 ff205e035a383d2d
fefc00ff0300f10f 0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000
87787c693a634e34 fd2157302a2f616b aa8973ea3e954c92 80c53edd51a94af3 d4d515ce3f6a0135 ffed80b08154ba27 aad2a2f8ab21a5d5
8ad7eec8e184e598 fde88ed4819e9e08 83817fbe857e8582 aad52a58d528dbe4 807f805e7f82746b cd32dd033cc33e29 f70af53748f5020d
a956a3bc53ac5f40 8778928d7a857f50 878778d603fc150f fdac889b6ac404fa fe838986a7d3a48a a3d7c1d380d8ab87 807cc077bc3fc81b
d777c1708352896e fa2c750bcb07903d aa0a793b31cb4ee2 d274d840cd618f6f ef2bd326e5304c70 a928512e46b375dd 808e62eb74f970e5
d1d02acc33945fd6 dfa225b503c20ff8 ffa08a93a4d98ae8 a9c3ad9cb8a7a5a0 81d7fbf0a123998c d479e84ea461dc4d fa26d724f133f022
aa026c367d1d2b3d 800a6f3c77457477 d53f4975016c0cdd f5ab28b332834f8c ff8922b1f88492f8 900223786f3e3e77 d5a83067790f2ab6
fe8817a02efc4e83 aa85bf8e83b116d1 87d6b0ffa8e481c8 d67f866ac95c9c02 fa78f023f328e154 ab27d02dd90d9539 821a7e3079cd687e
d50d7d2d06962a7a d728312b4b4c6be9 ffa000bf2e0f249e ae8681f63bb36582 84de88e4c0dbef89 d77daa669d0488e8 ff69e012c4deb023
80d6abed84f981d3 d4dea5e282dc85ac fe7de03aa6188961 aa07f530c363dae4 a857f734c03a16ec 806e787f720b5955 d5285b3e5b2b4869
ffaa19387c48740e a28426b3769d31fa 81d32cce0ec3aaaf d5fea0cc810b86dd f77e830d90bf8282 aa5cd21cf616ed88 8154ea58c173fa9b
816f7e4e6e61213c dd28512d7e2b481f a259c749eecdb302 807756706f40e2fe d720742b7d43471e ff20690179375556 ae8a2aa26acc19ef
80d922cf7fb48cc6 d5d487e22da603f4 f7f984dc961e9408 bbc6ce05bac1c383 aa59f1aae8d2f031 817fc5587730ca5a d52a4735441e793e
fb237e267b014f10 a0817ea376a8761f 80d924d53bed2da3 d5f828852bdb961c
""".split()


def hashes_of(png: bytes, mask=()) -> list[str]:
    hashes, _ = parse_png(png).hashed(mask)
    return [f"{h:016x}" for h in hashes]


@pytest.mark.parametrize("image, mask, expected", [
    (rectangles, (), RECTANGLES),
    (gradients, (), GRADIENTS),
    (gradients, MASK, GRADIENTS_MASKED),
], ids=["flat colours and straight edges", "shading and noise", "shading and noise, masked"])
def test_tile_hashes_are_those_of_the_scipy_dct(image, mask, expected):
    assert len(expected) == GRID[0] * GRID[1]
    got = hashes_of(image(), mask)
    differing = [(k, want, have) for k, (want, have) in enumerate(zip(expected, got)) if want != have]
    assert not differing, f"tiles (index, expected, got) that differ: {differing[:5]}"


def test_blank_tiles_hash_to_zero_and_others_do_not():
    blank = RECTANGLES.count("0" * 16)
    assert 0 < blank < len(RECTANGLES)  # the screen's background, and the rest
    assert "0" * 16 not in GRADIENTS  # noise everywhere: no tile is blank
    assert GRADIENTS_MASKED.count("0" * 16) > 0  # wholly masked tiles are flat grey


def test_a_tile_hash_is_the_median_test_of_its_lowest_dct_frequencies():
    """One tile worked out by the definition, with no shortcut: the coefficients summed over
    all 1,024 pixels, then each bit set when above the median."""
    shot = parse_png(gradients())
    width = GRID[0] * 32
    row, col = 4, 7
    pixels = [[shot.gray[(row * 32 + y) * width + col * 32 + x] for x in range(32)] for y in range(32)]

    def cos(k, n):
        return 2 * math.cos(math.pi * k * (2 * n + 1) / 64)

    coef = [sum(cos(u, y) * cos(v, x) * pixels[y][x] for y in range(32) for x in range(32))
            for u in range(8) for v in range(8)]
    median = sorted(coef)[31] / 2 + sorted(coef)[32] / 2
    bits = int("".join("1" if c > median else "0" for c in coef), 2)
    assert tile_hashes(shot.gray)[row * GRID[0] + col] == bits
    assert f"{bits:016x}" == GRADIENTS[row * GRID[0] + col]


def test_a_baseline_screenshot_round_trips_through_the_journal_format():
    shot = parse_png(rectangles())
    again = Screenshot.from_json(shot.to_json())
    assert (again.width, again.height, again.gray) == (1920, 1080, shot.gray)
    assert compare_images(shot, again).score == 0.0
    broken = dict(shot.to_json(), gray="AAAA")
    with pytest.raises(SnapshotError, match="3 bytes"):
        Screenshot.from_json(broken)


def test_the_hashes_of_a_screenshot_follow_its_mask():
    shot = parse_png(gradients())
    assert [f"{h:016x}" for h in shot.hashed(())[0]] == GRADIENTS
    assert [f"{h:016x}" for h in shot.hashed(MASK)[0]] == GRADIENTS_MASKED
    _, share = shot.hashed(MASK)
    assert min(share) == 0.0 and max(share) == 1.0  # wholly masked tiles and untouched ones
    assert [f"{h:016x}" for h in shot.hashed([tuple(r) for r in MASK])[0]] == GRADIENTS_MASKED
