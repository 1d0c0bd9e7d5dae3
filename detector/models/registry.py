"""Model names → builders: the architectures, and the named recipes of ``vigil train --model``.

A :class:`Recipe` is a frozen value (an architecture and a backbone); :func:`build_model` builds a
fresh detector from one, and :class:`~detector.models.checkpoint.Checkpoint` rebuilds a trained one
from the architecture name and the builder arguments it stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from detector.models.detector import Detector
from detector.models.fast_rcnn import build_fast_rcnn
from detector.models.faster_rcnn import build_faster_rcnn
from detector.models.localizer import build_localizer
from detector.models.regions import build_rcnn, build_sliding_window
from detector.models.yolo import build_yolo

ARCHITECTURES: dict[str, Callable[..., Detector]] = {
    "yolo": build_yolo,
    "faster_rcnn": build_faster_rcnn,
    "fast_rcnn": build_fast_rcnn,
    "localizer": build_localizer,
    "sliding_window": build_sliding_window,
    "rcnn": build_rcnn,
}
"""Architecture name → builder (keyword arguments: backbone, class_names, input_size, its own knobs)."""


@dataclass(frozen=True)
class Recipe:
    """A named detector: which architecture on which backbone."""

    arch: str
    backbone: str

    def builder_args(self, **options: Any) -> dict[str, Any]:
        """The builder's keyword arguments for this recipe, as a checkpoint stores them."""
        return {"backbone": self.backbone, **options}


RECIPES: dict[str, Recipe] = {
    **{f"yolo_lite{i}": Recipe("yolo", f"efficientnet_lite{i}") for i in range(3)},
    **{f"yolo_b{i}": Recipe("yolo", f"efficientnet_b{i}") for i in range(8)},
    "yolo_mobilenet_v3": Recipe("yolo", "mobilenet_v3_large"),
    "yolo_resnet50": Recipe("yolo", "resnet50"),
    "frcnn_lite0": Recipe("faster_rcnn", "efficientnet_lite0"),
    "frcnn_mobilenet_v3": Recipe("faster_rcnn", "mobilenet_v3_large"),
    "frcnn_resnet50": Recipe("faster_rcnn", "resnet50"),
    "fast_rcnn_lite0": Recipe("fast_rcnn", "efficientnet_lite0"),
    "localizer_lite0": Recipe("localizer", "efficientnet_lite0"),
    "sliding_window_lite0": Recipe("sliding_window", "efficientnet_lite0"),
    "rcnn_lite0": Recipe("rcnn", "efficientnet_lite0"),
}
"""Named recipes for ``vigil train --model``."""


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ValueError (listing the known ones) for another name."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def build_model(
    name: str,
    *,
    class_names: Sequence[str],
    input_size: int,
    pretrained: bool = True,
    trainable_stages: int | None = None,
    **options: Any,
) -> Detector:
    """A fresh detector from the recipe ``name``.

    ``options`` go to the architecture's builder (e.g. ``anchor_sizes`` for Faster R-CNN); pass the
    same ones to :meth:`Checkpoint.from_model <detector.models.checkpoint.Checkpoint.from_model>`."""
    recipe = get_recipe(name)
    return ARCHITECTURES[recipe.arch](
        class_names=class_names,
        input_size=input_size,
        pretrained=pretrained,
        trainable_stages=trainable_stages,
        **recipe.builder_args(**options),
    )
