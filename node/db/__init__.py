from node.db.base import Base, metadata
from node.db.engine import Database

__all__ = ["Base", "Database", "metadata"]
