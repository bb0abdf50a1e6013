"""How many CUDA devices this machine has, without importing torch.

The edge server runs on onnxruntime, NumPy and FastAPI alone, and none of them says how many GPUs
there are (ONNX Runtime lists the providers it was built with, not the devices present). So this
asks the CUDA driver itself (``cuInit`` and ``cuDeviceGetCount`` of ``libcuda``, the one call a
CUDA runtime makes first); no driver, or a driver that fails, means no device.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["cuda_device_count"]

_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """CUDA devices the driver reports; 0 without a driver or when it fails."""
    for name in (*_LIBRARIES, ctypes.util.find_library("cuda")):
        if not name:
            continue
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:
            return 0
        return int(count.value)
    return 0
