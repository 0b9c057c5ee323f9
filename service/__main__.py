"""`python -m service`: the same as the `sagemakerhpo` console script."""

from .cli import main

raise SystemExit(main())
