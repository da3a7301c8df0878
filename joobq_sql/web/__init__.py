"""The HTTP side of joobq-sql: REST API, dashboard and Prometheus metrics, as one ASGI app.

>>> from joobq_sql.web import create_app                     # doctest: +SKIP
>>> asgi = create_app(app)   # mount it in your ASGI app, or run `joobq-sql web --app ...`

Needs the `web` extra (``pip install 'joobq-sql[web]'``).
"""

from .app import create_app
from .server import BackgroundServer, serve, serve_in_background

__all__ = ["BackgroundServer", "create_app", "serve", "serve_in_background"]
