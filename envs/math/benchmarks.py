"""Math benchmarks as environments: ``rlenv/GSM8K-v0``, ``rlenv/MATH500-v0``, ``rlenv/AIME24-v0``,
``rlenv/AIME25-v0``.

Each is a :class:`rlenv.DatasetEnv` over the benchmark's Hugging Face dataset at a pinned commit
(loaded by ``DatasetEnv``'s own loader, ``datasets.load_dataset``), scored by the ``math``
verifier (:mod:`rlenv.verifiers.math`: the final answer must be mathematically equivalent to the
reference). The answer rules, as each benchmark publishes them:

- **GSM8K** (Cobbe et al. 2021, arXiv:2110.14168; github.com/openai/grade-school-math,
  ``grade_school_math/dataset.py``): the reference answer is the number after ``####`` in the
  ``answer`` column, commas removed; a reply is right when its final number equals it.
- **MATH-500** (the 500-problem test subset of MATH, Hendrycks et al. 2021, arXiv:2103.03874,
  chosen in Lightman et al. 2023, "Let's Verify Step by Step", github.com/openai/prm800k): the
  reference is the ``answer`` column; a reply is right when its final (boxed) answer is
  equivalent to it.
- **AIME 2024 / 2025**: the answer is an integer from 0 to 999 (the ``answer`` column); a reply
  is right when its final answer equals it.

**Offline.** No hub reachable: ``sample=True`` (or ``RLENV_BENCHMARK_SAMPLE=1``) poses the few
rows of ``envs/math/data/<name>_sample.jsonl``, in the hub's schema; ``sample=False`` (or
``RLENV_BENCHMARK_SAMPLE=0``) fails with :class:`~rlenv.datasets.DatasetUnavailableError`
naming the dataset and how to pre-download it. The default (``sample=None``, the variable unset)
loads the hub and, when it cannot, falls back to the sample, logging a warning (once per
process, logger ``rlenv.benchmarks``) and setting
``provenance["sample"] = True`` and ``provenance["warning"]`` saying it is NOT the benchmark.
See ``docs/environments/benchmarks.md``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from rlenv.datasets import BENCHMARK_SAMPLE_ENV_VAR as SAMPLE_ENV_VAR
from rlenv.datasets import DatasetEnv, DatasetUnavailableError, MissingDependencyError, load_rows
from rlenv.datasets import hub_reachable as _hub_reachable
from rlenv.datasets import sample_setting as _sample_setting
from rlenv.errors import RLEnvError
from rlenv.tasks import TaskList

__all__ = ["AIME24", "AIME25", "GSM8K", "MATH500", "SAMPLE_ENV_VAR", "MathBenchmark"]

DATA_DIR = Path(__file__).resolve().parent / "data"
_warned: set[str] = set()
_log = logging.getLogger("rlenv.benchmarks")


class MathBenchmark(DatasetEnv):
    """A math benchmark on the hub at a pinned revision, scored by the ``math`` verifier.

    Args:
        sample: ``True``: the bundled sample only (no hub); ``False``: the hub only (an error
            offline); ``None`` (default): ``RLENV_BENCHMARK_SAMPLE`` decides, else the hub with
            a loud fallback to the sample when the hub cannot be reached.
        **kwargs: As for :class:`~rlenv.DatasetEnv` (``max_turns``, ``split``,
            ``system_prompt``, ``require_boxed``...); the source, revision, config, split and
            fields are the benchmark's.
    """

    hub_name: ClassVar[str]
    revision: ClassVar[str]
    configs: ClassVar[tuple[str | None, ...]] = (None,)
    hub_split: ClassVar[str] = "test"
    prompt_column: ClassVar[str] = "problem"
    answer_column: ClassVar[str] = "answer"
    sample_file: ClassVar[str]
    answer_rule: ClassVar[str]
    citation: ClassVar[str]

    def __init__(self, *, sample: bool | None = None, **kwargs: Any) -> None:
        for fixed in ("source", "revision", "config", "data_split", "verifier"):
            if fixed in kwargs:
                raise RLEnvError(
                    f"{type(self).__name__}: {fixed}= is the benchmark's, not an option"
                )
        self.sample = sample
        super().__init__(
            str(DATA_DIR / self.sample_file),
            verifier="math",
            prompt_field=self.prompt_column,
            answer_field=self.answer_column,
            **kwargs,
        )

    def load_tasks(self) -> TaskList:
        rows, provenance = self._benchmark_rows()
        self.source = rows  # DatasetEnv maps the rows; the provenance is the benchmark's
        tasks = super().load_tasks()
        self.provenance = {**provenance, "tasks": len(tasks)}
        return tasks

    def _benchmark_rows(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        hub = {
            "benchmark": type(self).__name__,
            "name": self.hub_name,
            "revision": self.revision,
            "configs": list(self.configs),
            "data_split": self.hub_split,
            "answer_rule": self.answer_rule,
            "citation": self.citation,
        }
        setting = _sample_setting(self.sample)
        reason = f"sample=True (or {SAMPLE_ENV_VAR}=1)"
        if setting is not True:
            offline = os.environ.get("HF_DATASETS_OFFLINE") or os.environ.get("HF_HUB_OFFLINE")
            if setting is None and not offline and not _hub_reachable():
                reason = "the hub (huggingface.co) is unreachable from here"
            else:
                try:
                    return self._hub_rows(hub)
                except (DatasetUnavailableError, MissingDependencyError) as error:
                    if setting is False:
                        raise
                    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        return self._sample_rows(hub, reason, warn=setting is None)

    def _hub_rows(self, hub: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for config in self.configs:
            part, _ = load_rows(
                self.hub_name, revision=self.revision, config=config, data_split=self.hub_split
            )
            rows += part
        return rows, {"kind": "hub", **hub, "sample": False, "rows": len(rows)}

    def _sample_rows(
        self, hub: dict[str, Any], reason: str, *, warn: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows, file = load_rows(DATA_DIR / self.sample_file)
        warning = (
            f"{type(self).__name__}: the {len(rows)}-row SAMPLE "
            f"({self.sample_file}), NOT the benchmark {self.hub_name}@{self.revision[:7]}: "
            f"{reason}. Scores on it are not benchmark results."
        )
        if warn and warning not in _warned:  # once per process: a log record, not a Python
            _warned.add(warning)  # warning (check_env fails an env whose construction warns)
            _log.warning(warning)
        return rows, {
            "kind": "sample",
            **hub,
            "sample": True,
            "warning": warning,
            "path": file["path"],
            "sha256": file["sha256"],
            "rows": len(rows),
        }


class GSM8K(MathBenchmark):
    """GSM8K's 1,319 test problems (``openai/gsm8k``, config ``main``, split ``test``)."""

    hub_name = "openai/gsm8k"
    revision = "e53f048856ff4f594e959d75785d2c2d37b678ee"
    configs = ("main",)
    prompt_column = "question"
    sample_file = "gsm8k_sample.jsonl"
    # grade_school_math/dataset.py: extract_answer reads "#### (\-?[0-9\.\,]+)", commas removed.
    answer_rule = (
        "the number after '####' in the reference answer; the reply's final number equals it"
    )
    citation = "Cobbe et al. 2021, arXiv:2110.14168; github.com/openai/grade-school-math"


class MATH500(MathBenchmark):
    """MATH-500 (``HuggingFaceH4/MATH-500``, split ``test``): 500 MATH test problems."""

    hub_name = "HuggingFaceH4/MATH-500"
    revision = "ff5b20257d8185524591543f8ff5993951537bb8"
    sample_file = "math500_sample.jsonl"
    answer_rule = "the 'answer' column; the reply's final answer is mathematically equivalent"
    citation = (
        "Hendrycks et al. 2021, arXiv:2103.03874; Lightman et al. 2023, arXiv:2305.20050 "
        "(github.com/openai/prm800k, prm800k/math_splits/test.jsonl)"
    )


class AIME24(MathBenchmark):
    """AIME 2024 I and II, 30 problems (``HuggingFaceH4/aime_2024``; its one split is ``train``)."""

    hub_name = "HuggingFaceH4/aime_2024"
    revision = "2fe88a2f1091d5048c0f36abc874fb997b3dd99a"
    hub_split = "train"
    sample_file = "aime24_sample.jsonl"
    answer_rule = "an integer 0-999 (the 'answer' column); the reply's final answer equals it"
    citation = "MAA AIME 2024 I/II; dataset from AI-MO/aimo-validation-aime"


class AIME25(MathBenchmark):
    """AIME 2025 I and II, 30 problems (``opencompass/AIME2025``, configs ``AIME2025-I`` and
    ``AIME2025-II``, split ``test``, the prompt in ``question``)."""

    hub_name = "opencompass/AIME2025"
    revision = "a6ad95f611d72cf628a80b58bd0432ef6638f958"
    configs = ("AIME2025-I", "AIME2025-II")
    prompt_column = "question"
    sample_file = "aime25_sample.jsonl"
    answer_rule = "an integer 0-999 (the 'answer' column); the reply's final answer equals it"
    citation = "MAA AIME 2025 I/II; dataset opencompass/AIME2025"
