"""Evaluation: benchmark suites, graders, generation of base and SFT answers, statistics, summaries."""
