"""Test-wide settings: one torch / BLAS thread (2-core machines collapse when both are busy), headless plots, and a
cache folder of the session's own (tests never write to ~/.cache)."""
import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["BTDENSITY_CACHE"] = tempfile.mkdtemp(prefix="btdensity-test-cache-")

import torch  # noqa: E402

torch.set_num_threads(1)
