"""PNG plots for the household demo, written with the Python standard library only.

The demo has to leave a learning curve and a per-episode expert timeline (PA-MoE, Figure 2b:
one row per episode, one cell per environment step, coloured by the LoRA expert the router
chose) on machines that have no matplotlib, so this module carries its own small raster
canvas, a 5x7 bitmap font and a PNG encoder (`zlib` for IDAT, `struct` for the chunks).

Coordinates are pixels, origin top-left, rectangles are half-open (x, y, width, height).
Colours are (r, g, b) tuples of ints in 0..255. Every chart function validates its input first
and raises ValueError naming the offending series, episode or point, so a bad curve fails the
demo with a message instead of producing a misleading picture.
"""

import colorsys
import math
import os
import struct
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "Canvas", "Axes", "TimelineGrid", "palette", "text_size", "nice_ticks",
    "line_chart", "expert_timeline", "bar_chart", "encode_png", "read_png",
    "WHITE", "BLACK", "BASE_COLOR",
]

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GRID = (228, 228, 228)
AXIS = (90, 90, 90)
# Steps that ran on the base model (router said "no expert"). A neutral grey so it never
# competes with an expert hue; `palette` only produces saturated colours.
BASE_COLOR = (200, 200, 200)

# Tableau 10 without its grey: distinct under the common colour-vision deficiencies and well
# known from papers' figures. Longer palettes continue with golden-angle hues (see `palette`).
_TABLEAU = [
    (78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79),
    (237, 201, 72), (176, 122, 161), (255, 157, 167), (156, 117, 95),
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- font -----------------------------------------------------------------------------------

# 5 columns x 8 rows per glyph, rows separated by "|": rows 0-6 hold capitals and digits,
# row 7 is the descender of g, j, p, q, y and the comma. Kept as pictures rather than hex so a
# wrong pixel is visible in review.
_GLYPH_ART = {
    " ": ".....|.....|.....|.....|.....|.....|.....|.....",
    "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.|.....",
    "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.|.....",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####|.....",
    "3": "#####|...#.|..#..|...#.|....#|#...#|.###.|.....",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.|.....",
    "5": "#####|#....|####.|....#|....#|#...#|.###.|.....",
    "6": "..##.|.#...|#....|####.|#...#|#...#|.###.|.....",
    "7": "#####|....#|...#.|..#..|.#...|.#...|.#...|.....",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.|.....",
    "9": ".###.|#...#|#...#|.####|....#|...#.|.##..|.....",
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#|.....",
    "B": "####.|#...#|#...#|####.|#...#|#...#|####.|.....",
    "C": ".###.|#...#|#....|#....|#....|#...#|.###.|.....",
    "D": "###..|#..#.|#...#|#...#|#...#|#..#.|###..|.....",
    "E": "#####|#....|#....|####.|#....|#....|#####|.....",
    "F": "#####|#....|#....|####.|#....|#....|#....|.....",
    "G": ".###.|#...#|#....|#.###|#...#|#...#|.####|.....",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#|.....",
    "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.|.....",
    "J": "..###|...#.|...#.|...#.|...#.|#..#.|.##..|.....",
    "K": "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#|.....",
    "L": "#....|#....|#....|#....|#....|#....|#####|.....",
    "M": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#|.....",
    "N": "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#|.....",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.|.....",
    "P": "####.|#...#|#...#|####.|#....|#....|#....|.....",
    "Q": ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#|.....",
    "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#|.....",
    "S": ".####|#....|#....|.###.|....#|....#|####.|.....",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..|.....",
    "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.|.....",
    "V": "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..|.....",
    "W": "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.|.....",
    "X": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#|.....",
    "Y": "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..|.....",
    "Z": "#####|....#|...#.|..#..|.#...|#....|#####|.....",
    "a": ".....|.....|.###.|....#|.####|#...#|.####|.....",
    "b": "#....|#....|#.##.|##..#|#...#|#...#|####.|.....",
    "c": ".....|.....|.###.|#....|#....|#...#|.###.|.....",
    "d": "....#|....#|.##.#|#..##|#...#|#...#|.####|.....",
    "e": ".....|.....|.###.|#...#|#####|#....|.###.|.....",
    "f": "..##.|.#..#|.#...|###..|.#...|.#...|.#...|.....",
    "g": ".....|.....|.####|#...#|#...#|.####|....#|.###.",
    "h": "#....|#....|#.##.|##..#|#...#|#...#|#...#|.....",
    "i": "..#..|.....|.##..|..#..|..#..|..#..|.###.|.....",
    "j": "...#.|.....|..##.|...#.|...#.|...#.|#..#.|.##..",
    "k": "#....|#....|#..#.|#.#..|##...|#.#..|#..#.|.....",
    "l": ".##..|..#..|..#..|..#..|..#..|..#..|.###.|.....",
    "m": ".....|.....|##.#.|#.#.#|#.#.#|#...#|#...#|.....",
    "n": ".....|.....|#.##.|##..#|#...#|#...#|#...#|.....",
    "o": ".....|.....|.###.|#...#|#...#|#...#|.###.|.....",
    "p": ".....|.....|####.|#...#|#...#|####.|#....|#....",
    "q": ".....|.....|.####|#...#|#...#|.####|....#|....#",
    "r": ".....|.....|#.##.|##..#|#....|#....|#....|.....",
    "s": ".....|.....|.###.|#....|.###.|....#|####.|.....",
    "t": ".#...|.#...|###..|.#...|.#...|.#..#|..##.|.....",
    "u": ".....|.....|#...#|#...#|#...#|#..##|.##.#|.....",
    "v": ".....|.....|#...#|#...#|#...#|.#.#.|..#..|.....",
    "w": ".....|.....|#...#|#...#|#.#.#|#.#.#|.#.#.|.....",
    "x": ".....|.....|#...#|.#.#.|..#..|.#.#.|#...#|.....",
    "y": ".....|.....|#...#|#...#|#...#|.####|....#|.###.",
    "z": ".....|.....|#####|...#.|..#..|.#...|#####|.....",
    ".": ".....|.....|.....|.....|.....|.##..|.##..|.....",
    ",": ".....|.....|.....|.....|.....|.##..|..#..|.#...",
    ":": ".....|.##..|.##..|.....|.##..|.##..|.....|.....",
    "-": ".....|.....|.....|#####|.....|.....|.....|.....",
    "+": ".....|..#..|..#..|#####|..#..|..#..|.....|.....",
    "(": "...#.|..#..|.#...|.#...|.#...|..#..|...#.|.....",
    ")": ".#...|..#..|...#.|...#.|...#.|..#..|.#...|.....",
    "/": ".....|....#|...#.|..#..|.#...|#....|.....|.....",
    "%": "##...|##..#|...#.|..#..|.#...|#..##|...##|.....",
    "=": ".....|.....|#####|.....|#####|.....|.....|.....",
    "_": ".....|.....|.....|.....|.....|.....|#####|.....",
    "±": "..#..|..#..|#####|..#..|..#..|.....|#####|.....",
    "#": ".#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.|.....",
    "?": ".###.|#...#|....#|...#.|..#..|.....|..#..|.....",
    "!": "..#..|..#..|..#..|..#..|..#..|.....|..#..|.....",
    "'": "..#..|..#..|.#...|.....|.....|.....|.....|.....",
    "[": ".###.|.#...|.#...|.#...|.#...|.#...|.###.|.....",
    "]": ".###.|...#.|...#.|...#.|...#.|...#.|.###.|.....",
    "<": "...#.|..#..|.#...|#....|.#...|..#..|...#.|.....",
    ">": ".#...|..#..|...#.|....#|...#.|..#..|.#...|.....",
    "*": ".....|..#..|#.#.#|.###.|#.#.#|..#..|.....|.....",
}
GLYPH_WIDTH, GLYPH_HEIGHT = 5, 8
_ADVANCE = GLYPH_WIDTH + 1          # one blank column between letters
LINE_HEIGHT = GLYPH_HEIGHT + 2      # unscaled; two blank rows between lines


def _parse_glyphs(art):
    """Turns the glyph pictures into tuples of (column, row) of lit pixels, checked once."""
    glyphs = {}
    for char, picture in art.items():
        rows = picture.split("|")
        if len(rows) != GLYPH_HEIGHT or any(len(r) != GLYPH_WIDTH for r in rows):
            raise AssertionError(f"glyph {char!r} is not {GLYPH_WIDTH}x{GLYPH_HEIGHT}")
        glyphs[char] = tuple((x, y) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "#")
    return glyphs


_GLYPHS = _parse_glyphs(_GLYPH_ART)
# Characters outside the font draw as a hollow box ("tofu"), the usual font fallback: a label
# with an odd character stays legible and the gap is visible, rather than failing a whole run.
_TOFU = _parse_glyphs({"": "#####|#...#|#...#|#...#|#...#|#...#|#####|....."})[""]


def text_size(text, scale=1):
    """(width, height) in pixels of `text` drawn at `scale`; lines are split at "\\n"."""
    lines = text.split("\n")
    width = max(0, max(len(line) for line in lines) * _ADVANCE - 1)
    height = (len(lines) - 1) * LINE_HEIGHT + GLYPH_HEIGHT
    return width * scale, height * scale


# --- canvas ---------------------------------------------------------------------------------

def _check_color(color):
    """`color` as an (r, g, b) tuple; checked where a colour is stored, not on every pixel."""
    if len(color) != 3 or any(not isinstance(c, int) or not 0 <= c <= 255 for c in color):
        raise ValueError(f"colour must be three ints in 0..255, got {color!r}")
    return tuple(color)


@lru_cache(maxsize=64)
def _blend_table(channel, alpha):
    """A 256-byte translation table mixing every old value with `channel` at opacity `alpha`.

    bytes.translate applies it to a whole strided slice of the buffer in C, which is what keeps
    translucent fills (confidence bands) fast in pure Python. Cached: a band asks for the same
    three tables once per pixel column."""
    return bytes(round(old * (1.0 - alpha) + channel * alpha) for old in range(256))


class Canvas:
    """An RGB raster, row-major, 3 bytes per pixel, with an optional clip rectangle."""

    def __init__(self, width, height, background=WHITE):
        if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1:
            raise ValueError(f"canvas size must be positive ints, got {width!r} x {height!r}")
        self.width, self.height = width, height
        self.background = _check_color(background)
        self.pixels = bytearray(bytes(self.background) * (width * height))
        self._clip = (0, 0, width, height)

    @contextmanager
    def clip(self, x, y, width, height):
        """Restricts drawing to a rectangle inside the current clip (plot areas: a curve that
        leaves a fixed y_range must not paint over the tick labels)."""
        saved = self._clip
        cx0, cy0, cx1, cy1 = saved
        self._clip = (max(cx0, x), max(cy0, y), min(cx1, x + width), min(cy1, y + height))
        try:
            yield self
        finally:
            self._clip = saved

    def get_pixel(self, x, y):
        """The (r, g, b) at (x, y); IndexError outside the canvas."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise IndexError(f"pixel ({x}, {y}) outside {self.width}x{self.height}")
        i = (y * self.width + x) * 3
        return tuple(self.pixels[i:i + 3])

    def fill_rect(self, x, y, width, height, color, alpha=1.0):
        """Fills the half-open rectangle, clipped; `alpha` < 1 mixes with what is underneath."""
        x0, y0 = max(x, self._clip[0]), max(y, self._clip[1])
        x1, y1 = min(x + width, self._clip[2]), min(y + height, self._clip[3])
        if x0 >= x1 or y0 >= y1 or alpha <= 0:
            return
        buf, w = self.pixels, self.width
        if alpha >= 1.0:
            run = bytes(color) * (x1 - x0)
            for row in range(y0, y1):
                start = (row * w + x0) * 3
                buf[start:start + len(run)] = run
            return
        tables = [_blend_table(c, alpha) for c in color]
        # Walk the shorter side, blending one channel of a whole column or row per call.
        if x1 - x0 <= y1 - y0:
            step = w * 3
            for col in range(x0, x1):
                for c in range(3):
                    s, e = (y0 * w + col) * 3 + c, ((y1 - 1) * w + col) * 3 + c + 1
                    buf[s:e:step] = buf[s:e:step].translate(tables[c])
        else:
            for row in range(y0, y1):
                for c in range(3):
                    s, e = (row * w + x0) * 3 + c, (row * w + x1 - 1) * 3 + c + 1
                    buf[s:e:3] = buf[s:e:3].translate(tables[c])

    def line(self, x0, y0, x1, y1, color, thickness=1):
        """Bresenham's line between two pixel centres; `thickness` stamps a square brush at
        each step, which keeps curves of any slope the same weight."""
        if not isinstance(thickness, int) or thickness < 1:
            raise ValueError(f"line thickness must be a positive int, got {thickness!r}")
        x0, y0, x1, y1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        half = (thickness - 1) // 2
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.fill_rect(x0 - half, y0 - half, thickness, thickness, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x, y, text, color=BLACK, scale=1):
        """Draws `text` with its top-left corner at (x, y) in the built-in 5x7 font (plus a
        descender row), each font pixel a `scale` x `scale` square; returns the x just right
        of the widest line."""
        for line_no, line in enumerate(text.split("\n")):
            top = y + line_no * LINE_HEIGHT * scale
            for i, char in enumerate(line):
                left = x + i * _ADVANCE * scale
                for gx, gy in _GLYPHS.get(char, _TOFU):
                    self.fill_rect(left + gx * scale, top + gy * scale, scale, scale, color)
        return x + text_size(text, scale)[0]

    def save_png(self, path):
        """Writes the canvas as an 8-bit RGB PNG, atomically: the bytes go to a temporary file
        in the same folder, are fsynced, then os.replace puts them in place. A reader (or a
        crash) never sees a half-written plot, and a failed write leaves the old file as it was."""
        data = encode_png(self.width, self.height, self.pixels)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


# --- PNG ------------------------------------------------------------------------------------

def _chunk(kind, payload):
    """One PNG chunk: length, type, data, CRC-32 of type and data (PNG spec §5.3)."""
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def encode_png(width, height, rgb):
    """PNG bytes for `rgb` (width*height*3 bytes, row-major). Every scanline uses filter 0
    (none): zlib alone compresses flat-coloured plots well, and `read_png` stays trivial."""
    stride = width * 3
    if len(rgb) != stride * height:
        raise ValueError(f"expected {stride * height} bytes of RGB, got {len(rgb)}")
    raw = bytearray()
    for row in range(height):
        raw.append(0)
        raw += rgb[row * stride:(row + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, truecolour, no interlace
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), 6))
            + _chunk(b"IEND", b""))


def read_png(path):
    """Decodes a PNG as written by this module (8-bit RGB, non-interlaced, filter 0) into
    (width, height, pixels) with pixels[y][x] == (r, g, b). Checks every chunk's CRC; anything
    else raises ValueError. Meant for tests, not as a general decoder."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != PNG_SIGNATURE:
        raise ValueError(f"{path}: not a PNG (bad signature)")
    pos, header, idat = 8, None, bytearray()
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f"{path}: truncated chunk header at byte {pos}")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        crc_bytes = data[pos + 8 + length:pos + 12 + length]
        if len(payload) != length or len(crc_bytes) != 4:
            raise ValueError(f"{path}: truncated {kind!r} chunk")
        if struct.unpack(">I", crc_bytes)[0] != zlib.crc32(kind + payload) & 0xFFFFFFFF:
            raise ValueError(f"{path}: CRC mismatch in {kind!r} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat += payload
        elif kind == b"IEND":
            break
        pos += 12 + length
    else:
        raise ValueError(f"{path}: no IEND chunk")
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if (depth, colour_type, interlace) != (8, 2, 0):
        raise ValueError(f"{path}: only 8-bit RGB non-interlaced PNGs are supported")
    raw = zlib.decompress(bytes(idat))
    stride = width * 3
    if len(raw) != (stride + 1) * height:
        raise ValueError(f"{path}: image data has {len(raw)} bytes, expected {(stride + 1) * height}")
    pixels = []
    for row in range(height):
        start = row * (stride + 1)
        if raw[start] != 0:
            raise ValueError(f"{path}: row {row} uses PNG filter {raw[start]}, only 0 is supported")
        line = raw[start + 1:start + 1 + stride]
        pixels.append(list(zip(line[0::3], line[1::3], line[2::3])))
    return width, height, pixels


# --- shared chart pieces --------------------------------------------------------------------

def palette(count):
    """`count` distinct saturated colours: Tableau 10 first, then hues a golden angle apart
    (each new hue lands in the largest gap left by the previous ones)."""
    colours = list(_TABLEAU[:count])
    for i in range(count - len(colours)):
        r, g, b = colorsys.hsv_to_rgb((0.07 + i * 0.381966) % 1.0, 0.75 - 0.2 * (i % 2), 0.85)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def nice_ticks(lo, hi, target=6):
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about
    `target` of them. Returns (ticks, step); the first and last tick enclose [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError(f"bad tick range {lo!r}..{hi!r}")
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    # Heckbert's "nice numbers" (Graphics Gems, 1990): round the rough step to 1, 2, 5 or 10
    # times a power of ten, whichever is nearest, so the count stays close to `target`.
    rough = (hi - lo) / max(target - 1, 1)
    magnitude = 10 ** math.floor(math.log10(rough))
    fraction = rough / magnitude
    step = magnitude * (1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    # Multiply integers by the step (instead of adding repeatedly) so 0.1 + 0.2 drift never
    # shows up in a label.
    return [round(k * step, 12) for k in range(first, last + 1)], step


def _tick_label(value, step):
    """A tick value with the decimals `step` needs, the same for every tick of an axis
    (step 0.05 -> "0.00", "0.05", "0.10"; step 50 -> "150")."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    text = f"{value:.{decimals}f}"
    return text[1:] if float(text) == 0 and text.startswith("-") else text   # no "-0.0"


def _number(value, what):
    """`value` as a finite float, or ValueError naming `what` (NaN and inf included: a NaN
    return in a learning curve is a training bug the plot must not hide)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what}: value is {number}, expected a finite number")
    return number


def _check_size(width, height):
    """Charts below 200x150 have no room for ticks, legend and title; say so up front."""
    if not (isinstance(width, int) and isinstance(height, int)) or width < 200 or height < 150:
        raise ValueError(f"image size must be ints of at least 200x150, got {width!r}x{height!r}")


def _legend(canvas, entries, x, y, max_width, draw=True):
    """Lays out (label, colour, style) entries left to right, wrapping at `max_width`;
    style "line" draws a short stroke, "box" a filled square. Returns the height used, so
    callers can measure first (draw=False, canvas may be None) and place the plot below."""
    swatch, gap, row_height = 16, 14, LINE_HEIGHT + 4
    cx, cy = x, y
    for label, colour, style in entries:
        entry_width = swatch + 5 + text_size(label)[0]
        if cx > x and cx + entry_width > x + max_width:
            cx, cy = x, cy + row_height
        if draw:
            if style == "line":
                canvas.fill_rect(cx, cy + 3, swatch, 3, colour)
            else:
                canvas.fill_rect(cx + 3, cy, 10, 10, colour)
            canvas.text(cx + swatch + 5, cy + 1, label, BLACK)
        cx += entry_width + gap
    return cy - y + row_height


def _title(canvas, title):
    """Centred title in double-size letters at the top; returns the y below it."""
    width, height = text_size(title, 2)
    canvas.text(max(4, (canvas.width - width) // 2), 10, title, BLACK, scale=2)
    return 10 + height + 10


@dataclass(frozen=True)
class Axes:
    """Where a chart's plot area landed and how data maps onto it, returned so callers (tests,
    annotations) locate data without repeating the layout arithmetic. The plot area is the
    half-open box [left, right) x [top, bottom)."""
    left: int
    top: int
    right: int
    bottom: int
    x_range: tuple
    y_range: tuple

    def to_pixel(self, x, y):
        """The pixel (column, row) where data point (x, y) is drawn."""
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = self.left + (x - x0) / (x1 - x0) * (self.right - 1 - self.left)
        py = self.bottom - 1 - (y - y0) / (y1 - y0) * (self.bottom - 1 - self.top)
        return int(round(px)), int(round(py))


def _draw_axes(canvas, axes, x_ticks, x_step, y_ticks, y_step, x_label, y_label):
    """Grid lines, frame, tick labels and axis labels around `axes`. `x_ticks` None means the
    caller labels the x axis itself (bar charts label groups, not numbers)."""
    for value in y_ticks:
        _, py = axes.to_pixel(axes.x_range[0], value)
        canvas.fill_rect(axes.left, py, axes.right - axes.left, 1, GRID)
        label = _tick_label(value, y_step)
        w, _ = text_size(label)
        canvas.fill_rect(axes.left - 4, py, 4, 1, AXIS)
        canvas.text(axes.left - 7 - w, py - 3, label, AXIS)
    for value in x_ticks or ():
        px, _ = axes.to_pixel(value, axes.y_range[0])
        canvas.fill_rect(px, axes.top, 1, axes.bottom - axes.top, GRID)
        label = _tick_label(value, x_step)
        w, _ = text_size(label)
        canvas.fill_rect(px, axes.bottom, 1, 4, AXIS)
        canvas.text(px - w // 2, axes.bottom + 7, label, AXIS)
    canvas.fill_rect(axes.left - 1, axes.top, 1, axes.bottom - axes.top + 1, AXIS)
    canvas.fill_rect(axes.left - 1, axes.bottom, axes.right - axes.left + 1, 1, AXIS)
    # The y label sits above the axis, horizontally: a 5x7 font turned sideways is hard to read.
    canvas.text(max(4, axes.left - text_size(y_label)[0] // 2), axes.top - LINE_HEIGHT - 6, y_label, BLACK)
    w, _ = text_size(x_label)
    canvas.text((axes.left + axes.right - w) // 2, axes.bottom + 7 + LINE_HEIGHT + 6, x_label, BLACK)


# --- line chart -----------------------------------------------------------------------------

def _check_series(series):
    """Validated copy of line_chart's series: (name, sorted points, sorted band or None)."""
    if not isinstance(series, (list, tuple)) or not series:
        raise ValueError("line_chart: series must be a non-empty list of (name, points[, band])")
    checked = []
    for entry in series:
        if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
            raise ValueError(f"line_chart: each series is (name, points[, band]), got {entry!r}")
        name, points = str(entry[0]), entry[1]
        band = entry[2] if len(entry) == 3 else None
        if not points:
            raise ValueError(f"line_chart: series {name!r} has no points")
        pts = []
        for i, point in enumerate(points):
            if len(point) != 2:
                raise ValueError(f"line_chart: series {name!r} point {i} is not (x, y): {point!r}")
            pts.append((_number(point[0], f"series {name!r} point {i} x"),
                        _number(point[1], f"series {name!r} point {i} y")))
        bnd = None
        if band:
            bnd = []
            for i, item in enumerate(band):
                if len(item) != 3:
                    raise ValueError(f"line_chart: series {name!r} band entry {i} is not (x, lo, hi): {item!r}")
                x, lo, hi = (_number(v, f"series {name!r} band entry {i}") for v in item)
                if lo > hi:
                    raise ValueError(f"line_chart: series {name!r} band entry {i} has lo {lo} > hi {hi}")
                bnd.append((x, lo, hi))
            bnd.sort()
        checked.append((name, sorted(pts), bnd))
    return checked


def _fill_band(canvas, axes, band, colour):
    """Shades between the lo and hi curves, one pixel column at a time, interpolating between
    band entries; translucent so overlapping bands of two series both stay visible."""
    pixels = [(axes.to_pixel(x, lo), axes.to_pixel(x, hi)) for x, lo, hi in band]
    if len(pixels) == 1:
        (px, plo), (_, phi) = pixels[0]
        canvas.fill_rect(px - 1, phi, 3, plo - phi + 1, colour, alpha=0.22)
        return
    for ((ax, alo), (_, ahi)), ((bx, blo), (_, bhi)) in zip(pixels, pixels[1:]):
        for px in range(ax, bx):   # each column once; the last one after the loop
            t = (px - ax) / (bx - ax)
            top, bottom = round(ahi + (bhi - ahi) * t), round(alo + (blo - alo) * t)
            canvas.fill_rect(px, top, 1, bottom - top + 1, colour, alpha=0.22)
    (px, plo), (_, phi) = pixels[-1]
    canvas.fill_rect(px, phi, 1, plo - phi + 1, colour, alpha=0.22)


def line_chart(path, series, title, x_label, y_label, width=800, height=480, y_range=None):
    """Writes a line chart PNG to `path` and returns its `Axes`.

    `series` is a list of (name, [(x, y), ...]) or (name, points, [(x, lo, hi), ...]); the
    optional band is shaded behind the line (mean ± std across seeds). Points are drawn in x
    order, each series in its own `palette` colour, named in a legend under the title.
    `y_range` (lo, hi) fixes the y axis, e.g. (0, 1) for a success rate; otherwise it is the
    data (bands included) widened to round ticks. Raises ValueError for empty series,
    non-finite values, lo > hi in a band or a bad y_range."""
    _check_size(width, height)
    checked = _check_series(series)
    xs = [x for _, pts, _ in checked for x, _ in pts]
    ys = [y for _, pts, _ in checked for _, y in pts]
    ys += [v for _, _, band in checked for _, lo, hi in band or () for v in (lo, hi)]
    x_ticks, x_step = nice_ticks(min(xs), max(xs))
    if y_range is None:
        y_ticks, y_step = nice_ticks(min(ys), max(ys))
        y_lo, y_hi = y_ticks[0], y_ticks[-1]
    else:
        if len(y_range) != 2:
            raise ValueError(f"line_chart: y_range must be (lo, hi), got {y_range!r}")
        y_lo, y_hi = _number(y_range[0], "y_range lo"), _number(y_range[1], "y_range hi")
        if y_lo >= y_hi:
            raise ValueError(f"line_chart: y_range lo {y_lo} must be below hi {y_hi}")
        y_ticks, y_step = nice_ticks(y_lo, y_hi)
        y_ticks = [t for t in y_ticks if y_lo - 1e-9 <= t <= y_hi + 1e-9]

    canvas = Canvas(width, height)
    colours = palette(len(checked))
    top = _title(canvas, title)
    left = 16 + max(text_size(_tick_label(t, y_step))[0] for t in y_ticks)
    entries = [(name, colour, "line") for (name, _, _), colour in zip(checked, colours)]
    top += _legend(canvas, entries, left, top, width - left - 20)
    top += LINE_HEIGHT + 10  # room for the y label
    axes = Axes(left, top, width - 24, height - (2 * LINE_HEIGHT + 22),
                (x_ticks[0], x_ticks[-1]), (y_lo, y_hi))
    if axes.bottom - axes.top < 40:
        raise ValueError(f"line_chart: {height} px is too short for the title and a {len(checked)}-entry legend")
    _draw_axes(canvas, axes, x_ticks, x_step, y_ticks, y_step, x_label, y_label)
    with canvas.clip(axes.left, axes.top, axes.right - axes.left, axes.bottom - axes.top):
        for (_, _, band), colour in zip(checked, colours):
            if band:
                _fill_band(canvas, axes, band, colour)
        for (_, pts, _), colour in zip(checked, colours):
            pixels = [axes.to_pixel(x, y) for x, y in pts]
            for (ax, ay), (bx, by) in zip(pixels, pixels[1:]):
                canvas.line(ax, ay, bx, by, colour, thickness=2)
            # Markers only where they stay readable; on dense curves they would merge into a bar.
            if len(pixels) <= 40:
                for px, py in pixels:
                    canvas.fill_rect(px - 2, py - 2, 5, 5, colour)
    canvas.save_png(path)
    return axes


# --- expert timeline ------------------------------------------------------------------------

@dataclass(frozen=True)
class TimelineGrid:
    """Where `expert_timeline` put its cells: step t of episode i fills the half-open box
    `cell(i, t)`. Column edges are rounded from one exact division of the plot width, so every
    step gets its own column even when widths differ by a pixel."""
    left: int
    top: int
    plot_width: int
    steps: int
    row_height: int
    row_pitch: int

    def cell(self, episode, step):
        """(x, y, width, height) of the coloured part of a cell; a 1-pixel gap separates
        cells once they are at least 4 pixels wide, so runs of one expert still show steps."""
        x0 = self.left + step * self.plot_width // self.steps
        x1 = self.left + (step + 1) * self.plot_width // self.steps
        gap = 1 if x1 - x0 >= 4 else 0
        return x0, self.top + episode * self.row_pitch, x1 - x0 - gap, self.row_height


def _check_episodes(episodes, expert_count):
    """ValueError naming the episode and step of the first bad id: an id outside 0..K-1 means
    the router and the plot disagree on K, which a wrong colour would silently hide."""
    if not isinstance(expert_count, int) or isinstance(expert_count, bool) or expert_count < 1:
        raise ValueError(f"expert_timeline: expert_count must be a positive int, got {expert_count!r}")
    if not isinstance(episodes, (list, tuple)) or not episodes:
        raise ValueError("expert_timeline: episodes must be a non-empty list of lists of expert ids")
    for i, steps in enumerate(episodes):
        if not isinstance(steps, (list, tuple)):
            raise ValueError(f"expert_timeline: episode {i} must be a list of expert ids, got {type(steps).__name__}")
        for t, expert in enumerate(steps):
            if expert is None:
                continue
            if not isinstance(expert, int) or isinstance(expert, bool):
                raise ValueError(f"expert_timeline: episode {i} step {t}: expert id must be an int or None, got {expert!r}")
            if not 0 <= expert < expert_count:
                raise ValueError(f"expert_timeline: episode {i} step {t}: expert id {expert} "
                                 f"out of range 0..{expert_count - 1}")
    if not any(episodes):
        raise ValueError("expert_timeline: every episode is empty, nothing to draw")


def expert_timeline(path, episodes, expert_count, title, row_labels=None, width=None):
    """Writes a PA-MoE style expert timeline PNG to `path` (PA-MoE Figure 2b) and returns its
    `TimelineGrid`.

    `episodes[i][t]` is the expert the router chose at step t of episode i (0..expert_count-1),
    or None for a step on the base model, drawn in BASE_COLOR. Rows may differ in length; the
    cells after an episode ended stay blank. `row_labels` defaults to "ep 0", "ep 1", ...
    `width` None sizes cells from the longest episode (16 px down to 1 px per step); a given
    width must leave at least one pixel per step. Raises ValueError for ids out of range,
    non-int ids, mismatched labels or an empty timeline."""
    _check_episodes(episodes, expert_count)
    if row_labels is None:
        row_labels = [f"ep {i}" for i in range(len(episodes))]
    elif len(row_labels) != len(episodes):
        raise ValueError(f"expert_timeline: {len(row_labels)} row labels for {len(episodes)} episodes")
    row_labels = [str(label) for label in row_labels]
    steps = max(len(e) for e in episodes)
    left = 14 + max(text_size(label)[0] for label in row_labels)
    right_margin = 20
    if width is None:
        plot_width = steps * max(1, min(16, 720 // steps))
        width = max(left + plot_width + right_margin, 320)
    else:
        if not isinstance(width, int) or isinstance(width, bool):
            raise ValueError(f"expert_timeline: width must be an int or None, got {width!r}")
        plot_width = width - left - right_margin
        if plot_width < steps:
            raise ValueError(f"expert_timeline: width {width} leaves {plot_width} px for {steps} steps; "
                             f"use at least {left + steps + right_margin} or width=None")

    colours = palette(expert_count)
    entries = [(f"expert {k}", colours[k], "box") for k in range(expert_count)]
    if any(expert is None for steps_ in episodes for expert in steps_):
        entries.append(("base", BASE_COLOR, "box"))
    # Measure the legend before the canvas exists: the image height depends on it.
    legend_height = _legend(None, entries, left, 0, width - left - right_margin, draw=False)
    title_height = 10 + text_size(title, 2)[1] + 10
    row_height, row_pitch = 12, 15
    grid_top = title_height + legend_height + 6
    height = grid_top + len(episodes) * row_pitch + 2 * LINE_HEIGHT + 24

    canvas = Canvas(width, height)
    _title(canvas, title)
    _legend(canvas, entries, left, title_height, width - left - right_margin)
    grid = TimelineGrid(left, grid_top, plot_width, steps, row_height, row_pitch)
    for i, (label, row) in enumerate(zip(row_labels, episodes)):
        y = grid_top + i * row_pitch
        canvas.text(left - 8 - text_size(label)[0], y + (row_height - GLYPH_HEIGHT) // 2 + 1, label, AXIS)
        for t, expert in enumerate(row):
            canvas.fill_rect(*grid.cell(i, t), BASE_COLOR if expert is None else colours[expert])

    # Step axis: ticks at round step numbers, centred under their cells.
    axis_y = grid_top + len(episodes) * row_pitch + 2
    canvas.fill_rect(left, axis_y, plot_width, 1, AXIS)
    ticks, tick_step = nice_ticks(0, steps - 1 if steps > 1 else 1, target=min(8, steps + 1))
    for t in ticks:
        if 0 <= t < steps:
            x0, _, w, _ = grid.cell(0, int(t))
            cx = x0 + w // 2
            canvas.fill_rect(cx, axis_y, 1, 4, AXIS)
            label = _tick_label(t, tick_step)
            canvas.text(cx - text_size(label)[0] // 2, axis_y + 7, label, AXIS)
    canvas.text(left + (plot_width - text_size("step")[0]) // 2, axis_y + 7 + LINE_HEIGHT + 4, "step", BLACK)
    canvas.save_png(path)
    return grid


# --- bar chart ------------------------------------------------------------------------------

def bar_chart(path, groups, series_names, title, y_label, width=640, height=400, y_range=None):
    """Writes a grouped bar chart PNG to `path` and returns its `Axes` (x runs 0..len(groups),
    group g occupying [g, g + 1)).

    `groups` is a list of (label, [value per series]) in `series_names` order, e.g. success
    rate per task type for two policies. Bars rise from 0 (down for negatives); each carries
    its value when the number fits above it. `y_range` fixes the axis as in `line_chart`.
    Raises ValueError for no groups, a value count that does not match `series_names`, or
    non-finite values."""
    _check_size(width, height)
    series_names = [str(n) for n in series_names]
    if not series_names:
        raise ValueError("bar_chart: series_names is empty")
    if not isinstance(groups, (list, tuple)) or not groups:
        raise ValueError("bar_chart: groups must be a non-empty list of (label, values)")
    checked = []
    for g, group in enumerate(groups):
        if len(group) != 2 or len(group[1]) != len(series_names):
            raise ValueError(f"bar_chart: group {g} must be (label, {len(series_names)} values), got {group!r}")
        label, values = str(group[0]), group[1]
        checked.append((label, [_number(v, f"group {label!r} series {series_names[s]!r}")
                                for s, v in enumerate(values)]))
    values = [v for _, vs in checked for v in vs]
    if y_range is None:
        y_ticks, y_step = nice_ticks(min(0.0, min(values)), max(0.0, max(values)))
        y_lo, y_hi = y_ticks[0], y_ticks[-1]
    else:
        y_lo, y_hi = _number(y_range[0], "y_range lo"), _number(y_range[1], "y_range hi")
        if y_lo >= y_hi:
            raise ValueError(f"bar_chart: y_range lo {y_lo} must be below hi {y_hi}")
        y_ticks, y_step = nice_ticks(y_lo, y_hi)
        y_ticks = [t for t in y_ticks if y_lo - 1e-9 <= t <= y_hi + 1e-9]

    canvas = Canvas(width, height)
    colours = palette(len(series_names))
    top = _title(canvas, title)
    left = 16 + max(text_size(_tick_label(t, y_step))[0] for t in y_ticks)
    top += _legend(canvas, [(n, c, "box") for n, c in zip(series_names, colours)], left, top, width - left - 20)
    top += LINE_HEIGHT + 10
    axes = Axes(left, top, width - 20, height - (2 * LINE_HEIGHT + 22), (0, len(checked)), (y_lo, y_hi))
    if axes.bottom - axes.top < 40:
        raise ValueError(f"bar_chart: {height} px is too short for the title and legend")
    _draw_axes(canvas, axes, None, None, y_ticks, y_step, "", y_label)
    baseline = min(max(0.0, y_lo), y_hi)
    with canvas.clip(axes.left, axes.top - LINE_HEIGHT, axes.right - axes.left, axes.bottom - axes.top + LINE_HEIGHT):
        for g, (label, vs) in enumerate(checked):
            g0, _ = axes.to_pixel(g, 0)
            g1, _ = axes.to_pixel(g + 1, 0)
            pad = (g1 - g0) // 8          # space between groups
            bar = max(1, (g1 - g0 - 2 * pad) // len(vs))
            for s, value in enumerate(vs):
                x = g0 + pad + s * bar
                _, py = axes.to_pixel(0, min(max(value, y_lo), y_hi))
                _, p0 = axes.to_pixel(0, baseline)
                canvas.fill_rect(x, min(py, p0), max(1, bar - 1), abs(p0 - py) + 1, colours[s])
                number = f"{value:.3g}"
                w, _ = text_size(number)
                if w <= bar:   # at the bar's end: above a positive bar, below a negative one
                    label_y = py - GLYPH_HEIGHT - 2 if py <= p0 else py + 3
                    canvas.text(x + (bar - 1 - w) // 2, label_y, number, AXIS)
    for g, (label, _) in enumerate(checked):
        cx, _ = axes.to_pixel(g + 0.5, 0)
        canvas.text(cx - text_size(label)[0] // 2, axes.bottom + 7, label, BLACK)
    canvas.save_png(path)
    return axes
