"""Inbound change events from the accounting systems: our subscriptions at each system, the
callbacks it sends to /webhooks/{system}/{hook id}, and the hook cache the receiver reads.
(Outbound notifications to the office's own products are services/notifications/.)"""
