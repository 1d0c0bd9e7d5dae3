"""Inference engines: one YOLO network run by eager PyTorch, OpenVINO or ONNX Runtime.

:func:`detector.engines.build.build_detector` turns a checkpoint and a choice
(``detector.engine``, ``detector.precision``) into an object with the
:class:`~detector.models.detector.Detector` ``predict`` contract. The compiled engines run the
dense network exported once from the checkpoint (``cache.py``); letterboxing, decoding and NMS
are the numpy code every engine shares (``detector/postprocess.py``). The service serves a
compiled model from its cache entry without importing torch (``serving.py``).
"""
