"""Notifications' adapters: the SMTP mailer, the claim-check clients of intake's and scheduling's
internal APIs, the webhook store (PostgreSQL), its sender worker and its checked HTTP transport."""
