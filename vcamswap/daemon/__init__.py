"""Daemon: life cycle, its state, monitor and status, and the start-up service; control/ is what can be asked of
it, desktop/ its tray, hotkeys and Swap Mic."""
