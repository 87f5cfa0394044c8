"""The local control panel in the browser: preview, face gallery, controls and health, served by the daemon
on 127.0.0.1 (link.py: what the daemon hands it; guard.py: who may ask; routes.py, faces.py, live.py: what it
answers; server.py: uvicorn in a thread of the daemon; cli.py: `vcamswap panel`)."""
