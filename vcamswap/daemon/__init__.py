"""Daemon: life cycle, status, the intent table, control socket, tray, hotkeys, start-up service."""
