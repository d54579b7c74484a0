"""Interoperability with other libraries (ncps)."""
