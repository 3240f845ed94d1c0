"""Sphinx extension: each page lists every <script> once (same file, or same inline body, once).

Under jupyter-book 1.x, sphinx-thebe 0.3 adds its inline ``const THEBE_JS_URL = ...`` script twice to
every page, and the browser rejects the second copy ("Identifier 'THEBE_JS_URL' has already been
declared"), a console error on every page. Dropping exact repeats fixes it and guards against any other
script being loaded twice.
"""

from __future__ import annotations


def _drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    # An inline script's file name is None or "" depending on which path added it; its body is an attribute.
    unique = {}
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        unique.setdefault(key, script)
    context["script_files"] = list(unique.values())


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)  # after other extensions add theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}
