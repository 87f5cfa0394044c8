"""What can be asked of the daemon: the intent table, the control socket's protocol, server and client, and the
commands that use it (`vcamswap status`, `toggle`, ...)."""
