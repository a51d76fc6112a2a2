"""``python -m services.scheduling``."""

from services.scheduling.bootstrap import bootstrap
from shared.platform.runtime import main

main(bootstrap, "scheduling")
