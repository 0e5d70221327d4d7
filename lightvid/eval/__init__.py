"""Measurement: FLOPs, parameters, and (later) quality metrics."""
