"""The dashboard's pages: launch, runs, run, playground, compare."""
