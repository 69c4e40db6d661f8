"""Watching the state: problems raised by districts and centres, tracked to resolution, and the
operators' view of trouble (docs/watch.md)."""
