"""The daemon on the user's desktop: the tray icon, global hotkeys (pynput or the desktop portal) and Swap Mic."""
