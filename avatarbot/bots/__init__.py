"""Chat adapters (Telegram, Discord) over one platform-neutral request flow (`bots.flow`).

Importing this package is cheap: no chat library, no Celery, no torch. Each adapter imports its
platform library itself, and only when it runs.
"""
