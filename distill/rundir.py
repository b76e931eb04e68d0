"""The run folder: every path a run writes, in one place.

```
run_…/
├── config.json               the resolved RunConfig
├── final_model/              the SFT model: a LoRA adapter (+ tokenizer), or the full weights after full fine-tuning
├── merged_model/             LoRA runs: base + adapter merged (AutoModelForCausalLM loads it alone)
├── evaluation_results.json   schema_version, benchmarks, benchmark_samples; rendered: summary, deltas, by_set, samples
├── report.md
├── benchmarks/NAME.jsonl     each suite's answers, problem by problem (a stopped job continues from them)
├── distillation_pipeline.log
├── metrics.jsonl             training curve points
├── data_report.json          the training data's report; with a teacher, the traces' funnel too
├── generations.jsonl         trace generation: every problem, its teacher samples and their verdicts
├── dataset.jsonl             trace generation: one training row per kept trace (--dataset reads it)
├── README.md                 trace generation: the dataset card
├── timings.json
├── checkpoints/              for --resume
└── ddp/                      multi-process training's job files
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ADAPTER_FILE = "adapter_config.json"
MODEL_FILE = "config.json"


def model_kind(path: str | Path) -> str | None:
    """'adapter' for a PEFT adapter folder, 'full' for a transformers model folder, else None."""
    p = Path(path)
    if (p / ADAPTER_FILE).is_file():
        return "adapter"
    if (p / MODEL_FILE).is_file():
        return "full"
    return None


@dataclass(frozen=True)
class DDPFiles:
    """A multi-process training job's files (``RunDir.ddp``): written by the launcher, read by the ranks."""
    root: Path

    @property
    def job(self) -> Path:  # the configuration and paths; kept as the record
        return self.root / "job.json"

    @property
    def rows(self) -> Path:  # the training and validation rows (deleted after the job)
        return self.root / "rows.json"

    @property
    def outcome(self) -> Path:  # rank 0's result
        return self.root / "outcome.json"

    @property
    def cancel(self) -> Path:  # present: the ranks stop at the next step
        return self.root / "cancel"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def final_model(self) -> Path:
        return self.root / "final_model"

    @property
    def merged_model(self) -> Path:
        return self.root / "merged_model"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation_results.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def benchmarks(self) -> Path:
        return self.root / "benchmarks"

    @property
    def log(self) -> Path:
        return self.root / "distillation_pipeline.log"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def data_report(self) -> Path:
        return self.root / "data_report.json"

    @property
    def generations(self) -> Path:
        return self.root / "generations.jsonl"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset.jsonl"

    @property
    def dataset_card(self) -> Path:
        return self.root / "README.md"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def ddp(self) -> Path:
        return self.root / "ddp"

    @property
    def ddp_files(self) -> DDPFiles:
        return DDPFiles(self.ddp)

    def benchmark_job(self, job_id: int) -> Path:
        """The folder of a benchmark job run on this run's models."""
        return self.root / "benchmark_jobs" / f"job_{job_id}"

    def sft_model(self) -> Path | None:
        """The trained model to serve or evaluate as "sft", when training has saved one."""
        return self.final_model if model_kind(self.final_model) else None

    def last_checkpoint_step(self) -> int | None:
        steps = [int(m.group(1)) for p in (self.checkpoints.iterdir() if self.checkpoints.is_dir() else ())
                 if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and p.is_dir() and any(p.iterdir())]
        return max(steps) if steps else None
