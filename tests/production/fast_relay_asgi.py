"""The hub's ASGI app with a short outbox claim timeout, for the Redis fault test: a task whose Celery message was
lost with Redis (restarted empty) is re-sent by the outbox relay after seconds instead of the production 5 minutes.
Nothing else differs from `hub.asgi:app`."""

from datetime import timedelta

import hub.worker

hub.worker.CLAIM_TIMEOUT = timedelta(seconds=4)

from hub.asgi import app  # noqa: E402

__all__ = ["app"]
