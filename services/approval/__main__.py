"""``python -m services.approval``."""

from services.approval.bootstrap import bootstrap
from shared.platform.runtime import main

main(bootstrap, "approval")
