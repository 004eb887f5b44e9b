"""The fleet's REST API: the FastAPI app (`app.create_app`), the dependencies every route
uses (`deps`: database session, the caller's token and role, the clock) and the JSON error
format (`errors`). Each domain's routes live with the domain (fleet/faults/routes.py, ...)."""
