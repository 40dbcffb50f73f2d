"""Allow ``python -m dicomtui``."""

from dicomtui.cli import main

raise SystemExit(main())
