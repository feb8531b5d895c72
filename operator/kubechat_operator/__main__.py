"""`python -m kubechat_operator`."""

import sys

from kubechat_operator.cli import main

sys.exit(main())
