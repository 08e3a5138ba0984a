"""modelswap: read hot-swapped model files (model.py) and shared-memory channels (channel.py).

Pure Python; finds the control blocks through $MODELSWAP_SHM_DIR like the C and C++ clients.
"""

from .model import Corruption, Handle, Model, ModelswapError, Unavailable  # noqa: F401

try:  # the channel end ships separately (issue 6)
    from .channel import *  # noqa: F401,F403
except ImportError:  # pragma: no cover
    pass
