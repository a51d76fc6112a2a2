"""``python -m services.intake``."""

import sys

if any(arg.startswith("--export") for arg in sys.argv[1:]):
    # The log's public events only (``weerbaar replay``, ``reconcile``): the application (its
    # stored topics) and the gateway, without the API, consumers and read models to import.
    from services.intake.application import Intake
    from services.intake.gateway import to_public
    from shared.platform.replay import export_main

    export_main(Intake, to_public)
else:
    from services.intake.bootstrap import bootstrap
    from shared.platform.runtime import main

    main(bootstrap, "intake")
