"""avatarbot: a photo comes to life in a chat.

Importing this package is cheap on purpose: no torch, no chat library, no Celery. Each
subpackage pulls in its own heavy dependencies only when it is used.
"""

__version__ = "0.1.0"
