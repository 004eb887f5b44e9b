"""The central fleet manager."""
