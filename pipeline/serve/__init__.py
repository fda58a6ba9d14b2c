"""`trident serve`: the pipeline as a long-running service with an HTTP API (cameras added and removed
while it runs, snapshots, live MJPEG preview, events, Prometheus, a browser page). Needs the `serve`
extra (FastAPI, uvicorn); nothing here is imported by `trident run`."""
