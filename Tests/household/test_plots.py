"""Tests for examples/household/demo/plots.py, the dependency-free PNG plotting the demo uses
on CI machines without matplotlib. Run:
    PYTHONPATH=examples/household python3 -m pytest -q Tests/household/test_plots.py
The PNG checks parse the files independently of `read_png` (signature, chunk CRCs with
zlib.crc32, IHDR), so a bug shared by encoder and decoder cannot hide."""

import math
import os
import re
import struct
import time
import zlib

import pytest

from demo import plots


def png_chunks(path):
    """(type, payload) of every chunk, asserting each CRC; parsed here, not with read_png."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def assert_valid_png(path, width=None, height=None):
    chunks = png_chunks(path)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    w, h, depth, colour_type, compression, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour_type, compression, filt, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
    assert len(raw) == h * (w * 3 + 1)
    if width is not None:
        assert (w, h) == (width, height)
    return w, h


def increasing_series():
    return [("rising", [(x, x * 0.01) for x in range(0, 101, 10)])]


# --- PNG encoding ---------------------------------------------------------------------------

def test_canvas_round_trips_through_png(tmp_path):
    canvas = plots.Canvas(37, 23, background=(10, 20, 30))
    canvas.fill_rect(3, 4, 10, 5, (250, 0, 5))
    canvas.line(0, 22, 36, 0, (0, 200, 100))
    path = tmp_path / "c.png"
    canvas.save_png(str(path))
    assert_valid_png(path, 37, 23)
    width, height, pixels = plots.read_png(str(path))
    assert (width, height) == (37, 23)
    assert [[canvas.get_pixel(x, y) for x in range(width)] for y in range(height)] == pixels
    assert pixels[5][5] == (250, 0, 5) and pixels[0][0] == (10, 20, 30)


@pytest.mark.parametrize("kind", ["line", "timeline", "bar"])
def test_charts_are_valid_pngs(tmp_path, kind):
    path = str(tmp_path / f"{kind}.png")
    if kind == "line":
        plots.line_chart(path, increasing_series(), "Title", "update", "return", width=640, height=400)
        assert_valid_png(path, 640, 400)
    elif kind == "timeline":
        plots.expert_timeline(path, [[0, 1, None], [2]], 3, "Experts", width=500)
        w, _ = assert_valid_png(path)
        assert w == 500
    else:
        plots.bar_chart(path, [("pick", [0.5, 0.7]), ("heat", [0.2, 0.4])], ["a", "b"], "Bars", "success")
        assert_valid_png(path, 640, 400)
    w, h, pixels = plots.read_png(path)
    assert len(pixels) == h and all(len(row) == w for row in pixels)


def test_read_png_rejects_corruption(tmp_path):
    path = tmp_path / "c.png"
    plots.Canvas(8, 8).save_png(str(path))
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF                                   # inside IDAT: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC mismatch"):
        plots.read_png(str(path))
    path.write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not a PNG"):
        plots.read_png(str(path))


def test_read_png_rejects_other_filters(tmp_path):
    raw = b"\x01" + b"\x00" * 6                         # one 2x1 row using filter 1 (Sub)
    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    data = plots.PNG_SIGNATURE + plots._chunk(b"IHDR", header) + plots._chunk(b"IDAT", zlib.compress(raw)) \
        + plots._chunk(b"IEND", b"")
    path = tmp_path / "f.png"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="filter 1"):
        plots.read_png(str(path))


def test_encoding_800x480_is_fast():
    canvas = plots.Canvas(800, 480)
    for x in range(0, 800, 4):
        canvas.fill_rect(x, 0, 2, 480, (x % 256, 255 - x % 256, 128))
    start = time.perf_counter()
    plots.encode_png(800, 480, canvas.pixels)
    assert time.perf_counter() - start < 0.5


def test_full_line_chart_with_bands_is_fast(tmp_path):
    points = [(u, u / 200) for u in range(201)]
    band = [(x, y - 0.1, y + 0.1) for x, y in points]
    start = time.perf_counter()
    plots.line_chart(str(tmp_path / "l.png"), [("a", points, band), ("b", points[::2], band[::2])],
                     "t", "x", "y", y_range=(0, 1))
    assert time.perf_counter() - start < 1.0


# --- atomic save ----------------------------------------------------------------------------

def test_save_leaves_no_temp_files(tmp_path):
    path = tmp_path / "plot.png"
    plots.Canvas(10, 10).save_png(str(path))
    plots.Canvas(12, 10).save_png(str(path))          # overwrite goes through os.replace too
    assert os.listdir(tmp_path) == ["plot.png"]
    assert plots.read_png(str(path))[0] == 12


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_save_keeps_old_file_and_cleans_up(tmp_path, monkeypatch, failing):
    path = tmp_path / "plot.png"
    plots.Canvas(10, 10).save_png(str(path))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(f"simulated {failing} failure")

    monkeypatch.setattr(plots.os, failing, boom)
    with pytest.raises(OSError, match="simulated"):
        plots.Canvas(50, 50, background=(1, 2, 3)).save_png(str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["plot.png"]


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(plots.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        plots.line_chart(str(tmp_path / "new.png"), increasing_series(), "t", "x", "y")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


# --- expert timeline ------------------------------------------------------------------------

def test_timeline_cells_have_expert_colours(tmp_path):
    episodes = [[0, 1, 2, 3, None, 0], [None, None, 3], [2] * 9, [1, None]]
    path = str(tmp_path / "t.png")
    grid = plots.expert_timeline(path, episodes, 4, "Which expert, step by step")
    _, _, pixels = plots.read_png(path)
    colours = plots.palette(4)
    for i, row in enumerate(episodes):
        for t, expert in enumerate(row):
            x, y, w, h = grid.cell(i, t)
            expected = plots.BASE_COLOR if expert is None else colours[expert]
            # every pixel of the cell, not just its centre: nothing drawn over it
            assert {pixels[yy][xx] for yy in range(y, y + h) for xx in range(x, x + w)} == {expected}, (i, t)
        for t in range(len(row), grid.steps):           # after the episode ended: blank
            x, y, w, h = grid.cell(i, t)
            assert pixels[y + h // 2][x + w // 2] == plots.WHITE


def test_timeline_fits_given_width_and_long_episodes(tmp_path):
    episodes = [[t % 3 for t in range(300)], [None] * 150]
    path = str(tmp_path / "t.png")
    grid = plots.expert_timeline(path, episodes, 3, "long", width=400)
    width, _, pixels = plots.read_png(path)
    assert width == 400
    xs = [grid.cell(0, t)[0] for t in range(300)]
    assert xs == sorted(set(xs)), "every step needs its own column"
    for t in (0, 1, 2, 299):
        x, y, _, _ = grid.cell(0, t)
        assert pixels[y][x] == plots.palette(3)[t % 3]
    with pytest.raises(ValueError, match="px for 300 steps"):
        plots.expert_timeline(path, episodes, 3, "long", width=250)


@pytest.mark.parametrize("with_base", [True, False])
def test_timeline_legend_shows_every_expert_and_base_when_used(tmp_path, with_base):
    path = str(tmp_path / "t.png")
    grid = plots.expert_timeline(path, [[0, None if with_base else 0, 0]], 6, "legend")
    _, _, pixels = plots.read_png(path)
    above_grid = {p for row in pixels[:grid.top] for p in row}
    assert set(plots.palette(6)) <= above_grid
    assert (plots.BASE_COLOR in above_grid) == with_base


@pytest.mark.parametrize("episodes, count, message", [
    ([[0, 4]], 4, "episode 0 step 1: expert id 4 out of range 0..3"),
    ([[0], [-1]], 2, "episode 1 step 0: expert id -1 out of range"),
    ([[0, 1.0]], 2, "must be an int or None"),
    ([[True]], 2, "must be an int or None"),
    ([], 2, "non-empty"),
    ([[], []], 2, "every episode is empty"),
    ([[0]], 0, "expert_count must be a positive int"),
    ([(0, 1), "01"], 2, "episode 1 must be a list"),
])
def test_timeline_rejects_bad_input(tmp_path, episodes, count, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        plots.expert_timeline(str(tmp_path / "t.png"), episodes, count, "t")
    assert not os.listdir(tmp_path)


def test_timeline_rejects_mismatched_labels(tmp_path):
    with pytest.raises(ValueError, match="1 row labels for 2 episodes"):
        plots.expert_timeline(str(tmp_path / "t.png"), [[0], [1]], 2, "t", row_labels=["a"])


# --- line chart -----------------------------------------------------------------------------

def series_pixels(pixels, axes, colour):
    """{column: [rows]} of pixels in `colour` inside the plot area."""
    found = {}
    for y in range(axes.top, axes.bottom):
        for x in range(axes.left, axes.right):
            if pixels[y][x] == colour:
                found.setdefault(x, []).append(y)
    return found


def test_increasing_series_rises_left_to_right(tmp_path):
    path = str(tmp_path / "l.png")
    axes = plots.line_chart(path, increasing_series(), "Success", "update", "success rate", y_range=(0, 1))
    _, _, pixels = plots.read_png(path)
    colour = plots.palette(1)[0]
    found = series_pixels(pixels, axes, colour)
    columns = sorted(found)
    assert len(columns) > (axes.right - axes.left) * 0.9, "the line should span the plot"
    centres = [sum(found[x]) / len(found[x]) for x in columns]
    assert all(b <= a + 0.5 for a, b in zip(centres, centres[1:])), "row must not grow left to right"
    assert centres[0] - centres[-1] > (axes.bottom - axes.top) * 0.9
    for x, y in increasing_series()[0][1]:
        px, py = axes.to_pixel(x, y)
        assert pixels[py][px] == colour


def test_band_is_shaded_between_lo_and_hi(tmp_path):
    points = [(x, 0.5) for x in range(11)]
    band = [(x, 0.3, 0.7) for x in range(11)]
    path = str(tmp_path / "b.png")
    axes = plots.line_chart(path, [("flat", points, band)], "t", "x", "y", y_range=(0, 1))
    _, _, pixels = plots.read_png(path)
    colour = plots.palette(1)[0]
    x, inside = axes.to_pixel(2.5, 0.6)
    _, outside = axes.to_pixel(2.5, 0.8)
    shade = pixels[inside][x]
    assert shade not in (colour, plots.WHITE)
    assert all(c > o for c, o in zip(shade, colour)), "a light tint of the series colour"
    assert pixels[outside][x] in (plots.WHITE, plots.GRID)


def test_values_outside_y_range_stay_inside_the_plot(tmp_path):
    path = str(tmp_path / "l.png")
    axes = plots.line_chart(path, [("wild", [(0, -5.0), (1, 5.0), (2, -5.0)])], "t", "x", "y", y_range=(0, 1))
    _, height, pixels = plots.read_png(path)
    colour = plots.palette(1)[0]
    below = [(x, y) for y in range(axes.bottom + 1, height) for x, p in enumerate(pixels[y]) if p == colour]
    assert below == []


def test_two_series_get_distinct_colours_and_a_legend(tmp_path):
    path = str(tmp_path / "l.png")
    axes = plots.line_chart(path, [("a", [(0, 0), (1, 1)]), ("b", [(0, 1), (1, 0)])], "t", "x", "y")
    _, _, pixels = plots.read_png(path)
    a, b = plots.palette(2)
    for colour in (a, b):
        assert series_pixels(pixels, axes, colour)
        above = [p for row in pixels[:axes.top] for p in row if p == colour]
        assert above, "legend swatch above the plot"


@pytest.mark.parametrize("series, message", [
    ([], "series must be a non-empty list"),
    ([("a", [])], "series 'a' has no points"),
    ([("a", [(0, 1), (1, float("nan"))])], "series 'a' point 1 y: value is nan"),
    ([("a", [(float("inf"), 1)])], "series 'a' point 0 x: value is inf"),
    ([("a", [(0, 1)], [(0, float("nan"), 1)])], "series 'a' band entry 0: value is nan"),
    ([("a", [(0, 1)], [(0, 2, 1)])], "lo 2.0 > hi 1.0"),
    ([("a", [(0, "x")])], "expected a number"),
])
def test_line_chart_rejects_bad_input(tmp_path, series, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        plots.line_chart(str(tmp_path / "l.png"), series, "t", "x", "y")
    assert not os.listdir(tmp_path)


def test_line_chart_rejects_bad_y_range(tmp_path):
    with pytest.raises(ValueError, match="must be below hi"):
        plots.line_chart(str(tmp_path / "l.png"), increasing_series(), "t", "x", "y", y_range=(1, 1))
    with pytest.raises(ValueError, match="y_range lo: value is nan"):
        plots.line_chart(str(tmp_path / "l.png"), increasing_series(), "t", "x", "y", y_range=(math.nan, 1))


# --- bar chart ------------------------------------------------------------------------------

def test_bar_heights_follow_values(tmp_path):
    path = str(tmp_path / "b.png")
    groups = [("pick", [0.8, 0.4]), ("heat", [0.2, 1.0])]
    axes = plots.bar_chart(path, groups, ["moe", "single"], "Success", "rate", y_range=(0, 1))
    _, _, pixels = plots.read_png(path)
    colours = plots.palette(2)
    for g, (_, values) in enumerate(groups):
        g0, _ = axes.to_pixel(g, 0)
        g1, _ = axes.to_pixel(g + 1, 0)
        for s, value in enumerate(values):
            # the topmost pixel of the series colour within this group is the bar's top
            tops = [y for y in range(axes.top, axes.bottom) for x in range(g0, g1) if pixels[y][x] == colours[s]]
            assert abs(min(tops) - axes.to_pixel(0, value)[1]) <= 1


@pytest.mark.parametrize("groups, names, message", [
    ([], ["a"], "groups must be a non-empty list"),
    ([("g", [1.0])], [], "series_names is empty"),
    ([("g", [1.0])], ["a", "b"], "group 0 must be"),
    ([("g", [1.0, float("nan")])], ["a", "b"], "group 'g' series 'b': value is nan"),
])
def test_bar_chart_rejects_bad_input(tmp_path, groups, names, message):
    with pytest.raises(ValueError, match=message):
        plots.bar_chart(str(tmp_path / "b.png"), groups, names, "t", "y")


# --- text, palette, ticks -------------------------------------------------------------------

def test_text_draws_inside_its_box_only():
    text = "Step 12: ±0.5 (x/y) #3"
    for scale in (1, 2):
        canvas = plots.Canvas(300, 60)
        right = canvas.text(10, 20, text, plots.BLACK, scale=scale)
        w, h = plots.text_size(text, scale)
        assert right == 10 + w
        inside = outside = 0
        for y in range(60):
            for x in range(300):
                if canvas.get_pixel(x, y) == plots.BLACK:
                    if 10 <= x < 10 + w and 20 <= y < 20 + h:
                        inside += 1
                    else:
                        outside += 1
        assert inside > 20 * scale * scale and outside == 0


def test_font_covers_required_characters_with_distinct_glyphs():
    required = ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                ".,:-+()/%=_±#")
    glyphs = plots._GLYPHS
    assert all(c in glyphs and glyphs[c] for c in required)
    assert glyphs[" "] == ()
    shapes = [glyphs[c] for c in required]
    assert len(set(shapes)) == len(shapes), "two characters share a glyph"


def test_unknown_characters_draw_a_box():
    canvas = plots.Canvas(20, 20)
    canvas.text(0, 0, "é")
    lit = {(x, y) for y in range(20) for x in range(20) if canvas.get_pixel(x, y) == plots.BLACK}
    assert lit == set(plots._TOFU)


def test_palette_colours_are_distinct_and_not_base():
    colours = plots.palette(24)
    assert len(set(colours)) == 24 and plots.BASE_COLOR not in colours
    assert plots.palette(3) == colours[:3]


@pytest.mark.parametrize("lo, hi, expected", [
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0, 100, [0, 20, 40, 60, 80, 100]),
    (0.13, 0.71, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
    (-3, 7, [-4, -2, 0, 2, 4, 6, 8]),
])
def test_nice_ticks(lo, hi, expected):
    ticks, _ = plots.nice_ticks(lo, hi)
    assert ticks == expected


def test_tick_labels_have_no_float_noise():
    ticks, step = plots.nice_ticks(0, 0.3)
    assert [plots._tick_label(t, step) for t in ticks] == ["0.00", "0.05", "0.10", "0.15", "0.20", "0.25", "0.30"]
    assert plots._tick_label(-1e-13, 0.1) == "0.0"
    assert plots._tick_label(150, 50) == "150"
