"""Celery entry point: `celery -A hub.celery_app worker` (settings from HUB_* environment variables)."""

from hub import domains
from hub.config import get_settings
from hub.worker import make_celery

domains.register_tasks()
_settings = get_settings()
app = make_celery(_settings.redis_url or "redis://127.0.0.1:6379/0")
