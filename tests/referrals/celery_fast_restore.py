"""The hub's Celery app for the worker-kill test, with a short Redis visibility timeout: a message a SIGKILLed
worker left unacknowledged (acks_late) is handed to the next worker after seconds instead of the default hour."""

from hub.celery_app import app

app.conf.broker_transport_options = {"visibility_timeout": 3, "unacked_restore_interval": 1,
                                     "unacked_restore_throttle": 1}
