"""The server process around the models: the one model thread and its fair queue, dynamic
batching in chunks, the page cache, and the connection layer uvicorn lacks."""
