"""The HTML documents the pages answer with: one shell per app, which loads the app's own ES
module and stylesheet. No inline script or style (the CSP forbids both), nothing from
another origin; the modules build the page from the API's JSON."""

from __future__ import annotations


def shell(title: str, script: str, build: str) -> bytes:
    """``build`` versions the asset URLs (``/static/<build>/<name>``)."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/{build}/app.css">
<script type="module" src="/static/{build}/{script}"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<div id="app"><main id="main"><p class="muted">Loading…</p></main></div>
<noscript><p>Coinpurse's pages need JavaScript. The API works without them:
<a href="/docs">/docs</a>.</p></noscript>
</body>
</html>
""".encode()
