"""Fuzz target: image decoding and the `convcore classify` preprocessing (`load_image`, then resize 256 bicubic and
center crop 224, normalised) on mutated PNG / JPEG / GIF / BMP / WebP / TIFF / PPM bytes.

Contract: decoding raises only OSError / ValueError (the documented types), preprocessing returns a (3, 224, 224)
float32 array; never a crash, hang or memory blow-up (images are bounded by MAX_IMAGE_PIXELS before decoding).

    python fuzz/fuzz_image.py -max_total_time=60           # seeds: fuzz/seeds/image
"""

import io
import warnings

from _harness import main

from convcore import data, transforms

try:  # every Pillow plugin imported now, so that main() instruments their decoders too (they load lazily)
    from PIL import Image

    Image.init()
except ImportError:
    pass

_PRESET = data.imagenet_preset(224, resize=256, interpolation="bicubic")


def test_one_input(raw):
    try:
        img = transforms.load_image(io.BytesIO(raw))
    except (OSError, ValueError):
        return
    x = _PRESET(img)
    if x.shape != (3, 224, 224) or x.dtype.name != "float32":
        raise AssertionError(f"expected a (3, 224, 224) float32 array (got {x.shape} {x.dtype})")


if __name__ == "__main__":
    warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning and EXIF warnings for mutated headers
    main(test_one_input, "image", instrument=("PIL",))
