"""Detector: frames from Redis, batched across cameras, through a model, NMS and a tracker."""
