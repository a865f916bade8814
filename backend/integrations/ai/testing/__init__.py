"""Test and demo helpers: the loopback upstream emulator."""
