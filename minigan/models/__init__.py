"""Models built from minigan.nn layers."""
