"""``python -m services.approval``."""

import sys

if any(arg.startswith("--export") for arg in sys.argv[1:]):
    # The log's public events only (``weerbaar replay``, ``reconcile``): the application (its
    # stored topics) and the gateway, without the API, consumers and read models to import.
    from services.approval.application import Approval
    from services.approval.gateway import to_public
    from shared.platform.replay import export_main

    export_main(Approval, to_public)
else:
    from services.approval.bootstrap import bootstrap
    from shared.platform.runtime import main

    main(bootstrap, "approval")
