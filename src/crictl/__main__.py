"""`python -m crictl`."""

from crictl.main import main

main()
