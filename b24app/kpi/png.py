"""A tiny PNG bar-chart renderer for the weekly e-mail (no plotting library).

Mail clients run no JavaScript, so charts travel as inline images. Bars,
a baseline and an optional target line are enough at e-mail size. The
labels and values are printed in the HTML table next to the image.
"""

from __future__ import annotations

import struct
import zlib

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
GRID: Color = (220, 224, 230)
BAR: Color = (47, 198, 246)
ACCENT: Color = (255, 169, 0)
TARGET: Color = (255, 87, 82)


def bar_chart(
    values: list[float],
    *,
    width: int = 480,
    height: int = 160,
    color: Color = BAR,
    highlight_last: bool = False,
    target: float | None = None,
) -> bytes:
    """Return PNG bytes of a bar chart of ``values`` (negative values as 0)."""
    pixels = [bytearray(WHITE * width) for _ in range(height)]
    margin = 8
    top = max([*values, target or 0, 0]) or 1.0
    plot_h = height - 2 * margin
    slot = (width - 2 * margin) / max(len(values), 1)
    gap = max(int(slot * 0.2), 1)

    for fraction in (0.25, 0.5, 0.75, 1.0):
        _hline(pixels, height - margin - int(plot_h * fraction), margin, width, GRID)
    for index, value in enumerate(values):
        bar_h = int(plot_h * max(value, 0) / top)
        x0 = margin + int(index * slot) + gap // 2
        x1 = margin + int((index + 1) * slot) - gap // 2
        fill = ACCENT if highlight_last and index == len(values) - 1 else color
        for y in range(height - margin - bar_h, height - margin):
            _span(pixels[y], x0, max(x1, x0 + 1), fill)
    _hline(pixels, height - margin, margin, width - margin, (120, 120, 120))
    if target is not None:
        _hline(
            pixels,
            height - margin - int(plot_h * target / top),
            margin,
            width - margin,
            TARGET,
        )
    return encode(pixels, width, height)


def _span(row: bytearray, x0: int, x1: int, color: Color) -> None:
    x0, x1 = max(x0, 0), min(x1, len(row) // 3)
    row[x0 * 3 : x1 * 3] = bytes(color) * (x1 - x0)


def _hline(pixels, y: int, x0: int, x1: int, color: Color) -> None:
    if 0 <= y < len(pixels):
        _span(pixels[y], x0, x1, color)


def encode(pixels: list[bytearray], width: int, height: int) -> bytes:
    """Encode RGB rows as a PNG (filter 0 on every row)."""
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data))
            + body
            + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
