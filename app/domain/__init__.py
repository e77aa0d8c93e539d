"""What every front end (the JSON API, the pages, the command line) does with a loaded model:
the parameters of each operation, what the work costs, and the operations themselves. Pure
domain code on app.lm and app.store: no FastAPI, no HTTP."""
