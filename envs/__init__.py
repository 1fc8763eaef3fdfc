"""rlenv's bundled environments, installed as ``rlenv.envs``.

Registration only records entry-point strings: no environment module is imported until an
environment is made. Each environment lives in a subpackage by family (``games``, ``math``...).
"""

from __future__ import annotations

from rlenv.registry import register

register("rlenv/GuessNumber-v0", "rlenv.envs.games.guess_number:GuessNumber")
register("rlenv/Arithmetic-v0", "rlenv.envs.math.arithmetic:Arithmetic")
register("rlenv/ArithmeticRetry-v0", "rlenv.envs.math.arithmetic_retry:ArithmeticRetry")
register("rlenv/Algebra-v0", "rlenv.envs.math.algebra:Algebra")
register("rlenv/WordProblems-v0", "rlenv.envs.math.word_problems:WordProblems")
register("rlenv/GSM8K-v0", "rlenv.envs.math.benchmarks:GSM8K")
register("rlenv/MATH500-v0", "rlenv.envs.math.benchmarks:MATH500")
register("rlenv/AIME24-v0", "rlenv.envs.math.benchmarks:AIME24")
register("rlenv/AIME25-v0", "rlenv.envs.math.benchmarks:AIME25")
register("rlenv/HumanEval-v0", "rlenv.envs.code.humaneval:HumanEval")
register("rlenv/PythonBasics-v0", "rlenv.envs.code.python_basics:PythonBasics")
register("rlenv/MBPP-v0", "rlenv.envs.code.benchmarks:MBPP")
register("rlenv/MBPP-sanitized-v0", "rlenv.envs.code.benchmarks:MBPPSanitized")
register("rlenv/HumanEvalPlus-v0", "rlenv.envs.code.benchmarks:HumanEvalPlus")
register("rlenv/LiveCodeBench-v0", "rlenv.envs.code.benchmarks:LiveCodeBench")
register("rlenv/PythonBasicsFeedback-v0", "rlenv.envs.code.python_basics:PythonBasicsFeedback")
register("rlenv/Calculator-v0", "rlenv.envs.tools.calculator:Calculator")
register("rlenv/BFCL-Simple-v0", "rlenv.envs.tools.bfcl:BFCL", kwargs={"category": "simple"})
register("rlenv/BFCL-Multiple-v0", "rlenv.envs.tools.bfcl:BFCL", kwargs={"category": "multiple"})
register("rlenv/BFCL-Parallel-v0", "rlenv.envs.tools.bfcl:BFCL", kwargs={"category": "parallel"})
register(
    "rlenv/BFCL-ParallelMultiple-v0",
    "rlenv.envs.tools.bfcl:BFCL",
    kwargs={"category": "parallel_multiple"},
)
register("rlenv/Bank-v0", "rlenv.envs.tools.bank:Bank")
register("rlenv/Retail-v0", "rlenv.envs.tools.retail:Retail")

# reasoning_gym/<name>-v0 for each reasoning-gym dataset, when reasoning-gym is installed
# (checked without importing it: rlenv.envs.reasoning_gym imports only rlenv's core).
from rlenv.envs.reasoning_gym import register_all as _register_reasoning_gym  # noqa: E402

_register_reasoning_gym()

# TextArena's games (``pip install 'rlenv[textarena]'``): ids only, textarena is imported on make.
from rlenv.envs.textarena import register_textarena  # noqa: E402

register_textarena()
