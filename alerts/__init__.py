"""Alerts: detections through rules, published as events over ZeroMQ and kept in Redis."""
