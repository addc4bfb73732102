"""Streaming (exec/attach/port-forward): SPDY/3.1 and WebSocket framing, the Kubernetes stream
protocols, and the HTTP server behind the CRI streaming URLs.

Client-side modules (``spdy``, ``websocket``, ``http``, ``client``, ``remotecommand``,
``portforward``) import only the standard library, so crictl can use them cheaply.
"""
