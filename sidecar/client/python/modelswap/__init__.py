"""modelswap: read hot-swapped model files (model.py), shared-memory channels (channel.py) and
state regions kept safe by the snapshot host (region.py).

model.py and channel.py are pure Python; region.py calls libmodelswap_region.so through ctypes
(loaded on first use). All find the shm dir through $MODELSWAP_SHM_DIR like the C and C++ clients.
"""

from .model import Corruption, Damaged, Handle, Model, ModelswapError, Unavailable  # noqa: F401

try:  # the channel end ships separately
    from .channel import *  # noqa: F401,F403
except ImportError:  # pragma: no cover
    pass

from .region import AttachInfo, Region, RegionError  # noqa: F401,E402  (no library loaded yet)
