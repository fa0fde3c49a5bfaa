"""byzmpi: Byzantine-robust distributed training over MPI."""

import os

# Transparent huge pages for torch's large CPU tensors (docs/performance.md, "Fresh outputs"): a fresh
# tensor above glibc's mmap threshold (32 MB at most) page-faults anew on every allocation, 4 KiB at a
# time: a d = 1e7 float32 aggregate cost 12.8 ms in page faults alone, 2.6 ms with huge pages (numpy
# asks for them by default). torch's CPU allocator reads the variable once, at its first allocation,
# so it is set here, before anything in byzmpi imports torch; an explicit setting (0 turns it off) is kept.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
