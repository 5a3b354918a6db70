"""Test set-up: keep TF quiet and every library on one thread (tests share 2 cores)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")
