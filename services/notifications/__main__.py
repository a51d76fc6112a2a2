"""``python -m services.notifications``."""

import sys

if any(arg.startswith("--export") for arg in sys.argv[1:]):
    # The log's public events only (``weerbaar replay``, ``reconcile``): the application (its
    # stored topics) and the gateway, without the API, consumers and read models to import.
    from services.notifications.application import Notifications
    from services.notifications.gateway import to_public
    from shared.platform.replay import export_main

    export_main(Notifications, to_public)
else:
    from services.notifications.bootstrap import bootstrap
    from shared.platform.runtime import main

    main(bootstrap, "notifications")
