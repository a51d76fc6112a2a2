"""``python -m services.notifications``."""

from services.notifications.bootstrap import bootstrap
from shared.runtime import main

main(bootstrap, "notifications")
