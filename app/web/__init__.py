"""What the JSON API and the HTML pages share: FastAPI dependencies (deps.py), the templates
(templating.py), the error handlers (errors.py), the OpenAPI document (openapi.py) and the
static files (static.py). Both `app.api` and `app.pages` import from here; neither imports the
other."""
