"""``python -m emodistill``: the command line."""

from emodistill.cli.app import main

if __name__ == "__main__":
    main()
