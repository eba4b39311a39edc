"""Typed configuration: frozen dataclasses as the schema, one loader that walks them."""
