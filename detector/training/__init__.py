"""Offline tooling, apart from the online detector: YOLO-format data and augmentation
(:mod:`~detector.training.datasets`), the training loop (:mod:`~detector.training.train`) and COCO
mAP through pycocotools (:mod:`~detector.training.evaluate`). The service never imports it."""
