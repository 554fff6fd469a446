"""`lenet5 serve`: a trained run behind HTTP, with a draw-a-digit page for learning CNNs.

    app.py        the routes (create_app) and the ASGI gate: body limit, metrics, log lines
    inputs.py     what a /predict body may hold, checked into images or pixel arrays
    batching.py   micro-batching: concurrent requests share one forward pass
    features.py   the C1 and C3 feature maps the page draws
    metrics.py    Prometheus text exposition, by hand
    logs.py       every log line JSON, repeats collapsed
    docs_page.py  /docs as plain HTML (no CDN)
    server.py     uvicorn as the command runs it: deadlines, limits, workers
    (the `serve` sub-command is lenet5/cli/serve.py)
    static/       the page: index.html, page.js, page.css (no external asset)

Needs the `serve` extra (FastAPI, uvicorn, python-multipart, Pillow); nothing here is imported
by the rest of lenet5, and the command imports the framework only when it runs.
"""
