"""``python -m services.scheduling``."""

import sys

if any(arg.startswith("--export") for arg in sys.argv[1:]):
    # The log's public events only (``weerbaar replay``, ``reconcile``): the application (its
    # stored topics) and the gateway, without the API, consumers and read models to import.
    from services.scheduling.application import Scheduling
    from services.scheduling.gateway import to_public
    from shared.platform.replay import export_main

    export_main(Scheduling, to_public)
else:
    from services.scheduling.bootstrap import bootstrap
    from shared.platform.runtime import main

    main(bootstrap, "scheduling")
