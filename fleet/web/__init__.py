"""The dashboard and the technicians' handheld view: pages rendered on the server (Jinja2),
made live with htmx and server-sent events, served by the fleet manager beside its API.

- `session`: sign-in with an API token, kept in an HttpOnly cookie; roles as the API's.
- `i18n`: English and Korean, chosen per user (a cookie, else the browser's language).
- `live`: `/live`, one SSE stream per open page saying what changed (alarms, faults, nodes, OTA);
  page fragments refresh themselves on those events, no full-page polling.
- `pages/`: one module a page group; templates in `templates/`, files in `static/`
  (third-party ones in `static/vendor/`, copied from npm by scripts/vendor_web.py).
"""
