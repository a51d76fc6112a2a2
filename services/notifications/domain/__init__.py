"""Notifications' domain: the mail model (``notificatie``) and what a mail says (``templates``,
``ics``, ``afspraak``, ``mail``), the webhooks' rules and events (``webhooks``). Pure: pydantic,
the standard library and the platform's pure base types only."""
