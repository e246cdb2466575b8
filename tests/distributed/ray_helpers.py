"""What the Ray tests share besides fixtures (conftest.py): the image set's size and its undecodable files."""

IMAGES = 210  # distinct augmented photos
CORRUPT = {"corrupt/empty.jpg": b"", "corrupt/not-an-image.png": b"this is not a PNG file",
           "corrupt/truncated.jpg": None}  # None: the first third of a real JPEG


def image_files(folder):
    """Every file under folder (a pathlib.Path), sorted."""
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())
