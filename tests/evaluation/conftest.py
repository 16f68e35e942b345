"""Fixtures for the evaluation tests: photos and evaluated sets (offline caches and the random
AlexNet weights come from the root conftest)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def _bundled_photo(name: str, width: int) -> np.ndarray:
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)())
    height = round(image.height * width / image.width)
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


@pytest.fixture(scope="session")
def bundled_photo():
    """``bundled_photo(name, width)``: a scikit-image bundled photo (chelsea, coffee, astronaut...)
    resized to ``width`` px, uint8 RGB."""
    return _bundled_photo


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory, bundled_photo):
    """A folder of three bundled colour photos, a grey photo, a colourless RGB photo and a broken file,
    with a boxes file (chelsea: one large box; coffee: a large and a tiny box; astronaut: no entry)."""
    from tests.support.helpers import gradient_image

    from instcolor.instances import Instances, save_boxes_file

    folder = tmp_path_factory.mktemp("photos")
    sizes = {}
    for name, width in (("chelsea", 96), ("coffee", 96), ("astronaut", 80)):
        image = bundled_photo(name, width)
        Image.fromarray(image).save(folder / f"{name}.png")
        sizes[name] = (image.shape[1], image.shape[0])
    Image.fromarray(gradient_image(48, 64, channels=1)).save(folder / "grey.png")
    flat = np.repeat(gradient_image(48, 64, channels=1)[..., None], 3, axis=2)
    Image.fromarray(flat, "RGB").save(folder / "colourless.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    boxes = folder.parent / f"{folder.name}-boxes.json"
    save_boxes_file(
        boxes,
        {
            "chelsea.png": Instances(boxes=[[20, 5, 80, 60]], labels=["cat"], scores=[0.9]),
            "coffee.png": Instances(boxes=[[10, 8, 70, 55], [0, 0, 6, 6]], labels=["cup", "spoon"], scores=[0.8, 0.7]),
        },
    )
    return {"folder": folder, "boxes": boxes, "sizes": sizes}


@pytest.fixture(scope="session")
def evaluated(photo_set, random_alexnet, tmp_path_factory):
    """One evaluation of :func:`photo_set` at 64x64 with LPIPS (injected AlexNet), a compare model,
    and no Inception weights (so the Fréchet distance is unavailable)."""
    from tests.support.helpers import tiny_model

    from instcolor.evaluation import EvaluationConfig, evaluate
    from instcolor.instances import load_boxes_file
    from instcolor.io import find_images
    from instcolor.inference.pipeline import Colorizer

    paths, _ = find_images([str(photo_set["folder"])])
    config = EvaluationConfig(resolution=64, lpips_weights=random_alexnet, download=False, bootstrap_resamples=200)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("empty_torch_home")))
        patch.delenv("INSTCOLOR_INCEPTION_WEIGHTS", raising=False)
        result = evaluate(
            paths,
            Colorizer(tiny_model(0), size=64),
            boxes=load_boxes_file(photo_set["boxes"]),
            compare=Colorizer(tiny_model(1), size=64),
            config=config,
            root=photo_set["folder"],
        )
    return result
