"""Serving: real-time endpoints, variants, multi-model, data capture, batch transform.

The data plane is one ASGI app (``loopml serve``) hosting every endpoint of a
workspace; see ``docs/serve.md``.
"""
