"""Benchmark tasks shared by `dr.compare` (MQAR, sequential digits, reconstruction)."""
