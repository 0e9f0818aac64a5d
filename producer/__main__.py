"""`python -m producer …` is the `tidbok` command."""

import sys

from producer.cli import main

sys.exit(main())
