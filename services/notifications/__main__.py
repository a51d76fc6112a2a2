"""``python -m services.notifications``."""

from services.notifications.bootstrap import bootstrap
from shared.platform.runtime import main

main(bootstrap, "notifications")
