"""A module-level app for Celery's own command line: Flower, inspect, purge.

    celery -A avatarbot.tasks.celery_app flower --port=5555
    celery -A avatarbot.tasks.celery_app inspect active

Settings come from the environment / AVATARBOT_CONFIG, like every other avatarbot process.
"""

from avatarbot.settings import load_settings
from avatarbot.tasks.app import create_app

app = create_app(load_settings())
