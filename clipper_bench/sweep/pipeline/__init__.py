"""Pipelines of several models per query: their description, plan and runner."""
