"""Notifications' HTTP API: the delivery log (``notificaties``) and webhook subscriptions
(``webhooks``)."""
