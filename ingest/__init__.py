"""Ingest: cameras in, sampled and encoded frames out to bounded Redis streams.

sources.py opens a camera (OpenCV + FFmpeg, timeouts) · sampler.py picks frames by timestamp,
resizes and encodes · publisher.py XADDs with a bound · worker.py runs one camera with
reconnects · service.py spreads cameras over workers with leases · metrics.py counts it all.
"""
