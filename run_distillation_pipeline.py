#!/usr/bin/env python
"""The seed's entry point: python run_distillation_pipeline.py --mode all|train|evaluate [flags]."""

from distill.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
