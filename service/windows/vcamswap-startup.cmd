@echo off
rem vcamswap: swaps your face live into the virtual camera.
rem Written by `vcamswap service install`; `vcamswap service uninstall` removes it.
start "vcamswap" /b "@PYTHON@" -m vcamswap daemon
