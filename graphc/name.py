"""mx.name: the name managers that give blocks and symbols MXNet's automatic names."""
from .gluon.block import NameManager, Prefix  # noqa: F401
