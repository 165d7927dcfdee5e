"""`python -m hotline` runs the command line."""

from hotline.cli import main

raise SystemExit(main())
