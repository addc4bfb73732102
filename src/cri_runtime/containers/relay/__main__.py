"""``python -m cri_runtime.containers.relay``: run one container's IO relay."""

import sys

from .main import main

sys.exit(main())
