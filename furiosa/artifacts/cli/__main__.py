"""``python -m furiosa.artifacts.cli``: the ``furiosa-artifacts`` command."""

import sys

from furiosa.artifacts.cli import main

sys.exit(main())
