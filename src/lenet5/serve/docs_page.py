"""/docs without a CDN: the OpenAPI schema rendered as one plain HTML page on the server.

FastAPI's own /docs loads Swagger UI's script and styles from a CDN, so it is blank on a
machine without the internet. This page shows the same schema (each route, its parameters,
the bodies it reads, the answers it gives) with no script at all; /openapi.json stays for
tools that want the schema itself.
"""

from __future__ import annotations

import json
from html import escape


def docs_html(schema: dict) -> str:
    info = schema.get("info", {})
    sections = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            sections.append(_operation(method.upper(), path, operation))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(info.get("title", "API"))} API</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
section {{ border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 1rem; margin: 1rem 0; }}
.method {{ font-weight: bold; font-family: monospace; padding: 0 0.4rem; border-radius: 3px; background: #e8eefc; }}
code, pre {{ background: #f5f5f5; }} pre {{ padding: 0.5rem; overflow-x: auto; font-size: 13px; }}
</style></head><body>
<h1>{escape(info.get("title", "API"))} {escape(str(info.get("version", "")))}</h1>
<p>{escape(info.get("description", ""))}</p>
<p>The machine-readable schema: <a href="/openapi.json">/openapi.json</a> (OpenAPI {escape(schema.get("openapi", ""))}).</p>
{"".join(sections)}
</body></html>
"""


def _operation(method: str, path: str, operation: dict) -> str:
    parts = [f'<section><h2><span class="method">{method}</span> <code>{escape(path)}</code></h2>']
    if operation.get("summary"):
        parts.append(f"<p><strong>{escape(operation['summary'])}</strong></p>")
    if operation.get("description"):
        parts.append(f"<p>{escape(operation['description'])}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        rows = "".join(f"<li><code>{escape(p['name'])}</code> ({escape(p.get('in', ''))}, "
                       f"{escape(str(p.get('schema', {}).get('type', '')))})"
                       f"{' required' if p.get('required') else ''}</li>" for p in parameters)
        parts.append(f"<h3>Parameters</h3><ul>{rows}</ul>")
    body = operation.get("requestBody")
    if body:
        kinds = "".join(f"<li><code>{escape(kind)}</code><pre>{escape(json.dumps(spec.get('schema', {}), indent=1))}"
                        f"</pre></li>" for kind, spec in body.get("content", {}).items())
        parts.append(f"<h3>Request body</h3><ul>{kinds}</ul>")
    responses = operation.get("responses", {})
    if responses:
        rows = "".join(f"<li><code>{escape(code)}</code> {escape(answer.get('description', ''))}</li>"
                       for code, answer in responses.items())
        parts.append(f"<h3>Responses</h3><ul>{rows}</ul>")
    parts.append("</section>")
    return "\n".join(parts)
