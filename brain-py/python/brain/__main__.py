"""``python -m brain``: the ``brain`` command, for an environment whose
scripts directory is not on ``PATH``."""

from ._cli import main

if __name__ == "__main__":
    main()
