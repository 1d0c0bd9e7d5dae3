"""Detector models: backbones, necks, heads and the detectors built from them."""
