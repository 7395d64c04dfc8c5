"""The operator's command line: `python -m deploy.ops --help`."""
