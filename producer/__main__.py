"""`python -m producer …` is the `tidbok` command."""

import sys

from producer.cli.main import main

sys.exit(main())
