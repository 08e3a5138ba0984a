"""The errors of the model client (model.py, msf.py), each named after the modelswap::Code the
C++ client returns for the same failure (common/status.h)."""

__all__ = ["ModelswapError", "Unavailable", "Corruption", "Damaged"]


class ModelswapError(Exception):
    """Base error; .code names the modelswap::Code."""
    code = "Internal"


class Unavailable(ModelswapError):
    """No agent or no active version yet: retry later."""
    code = "Unavailable"


class Corruption(ModelswapError):
    """A control block or model file fails a check."""
    code = "Corruption"


class Damaged(ModelswapError):
    """The handle's version file was damaged under it (truncated, unreadable): acquire again."""
    code = "Aborted"
