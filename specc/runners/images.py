"""Pictures to pixel arrays, read one way for training and for predict (Pillow and numpy only, no torch)."""

from __future__ import annotations

import numpy as np

_16_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # how Pillow opens a 16-bit grayscale PNG ("I" in older Pillows)


def image_pixels(image, mode: str) -> np.ndarray:
    """A PIL image's uint8 pixels in `mode` ("L" or "RGB"): H x W, or H x W x 3."""
    if image.mode in _16_BIT_MODES:
        from PIL import Image

        # Pillow's convert("L") clips 16-bit values at 255, which turns nearly every pixel white: scale them instead.
        scaled = np.rint(np.asarray(image, dtype=np.float64) / 257)  # 65535 -> 255
        image = Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))
    return np.asarray(image.convert(mode), dtype=np.uint8)
