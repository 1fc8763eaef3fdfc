"""The model families' real chat templates (``templates/*.jinja``, sources in ``SOURCES.md``) as
test fixtures: for each, the parser of its tool-call format, the special tokens of its tokenizer,
and a byte-level BPE tokenizer built offline with those tokens and the template.

Imported by ``test_chat_templates.py`` (the four properties) and ``test_tool_env_e2e.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city."},
                    "days": {"type": "integer", "description": "How many days."},
                },
                "required": ["city"],
            },
        },
    }
]
ARGUMENTS = {"city": "Paris", "days": 3}


@dataclass(frozen=True, eq=False)
class Family:
    """One chat template and how its family writes tool calls.

    ``string_arguments``: the template concatenates ``function.arguments`` as text (the OpenAI
    wire form), so it needs a JSON string; ``ToolEnv`` writes a dict (the form Hugging Face
    documents), which these templates reject or print as a Python repr. ``empty_content``: the
    template reads ``content`` of a tool-call turn and needs ``""`` (transformers drops a None
    content). ``call_id``: the id the template expects (Mistral's need 9 characters).
    ``reasoning``: the generation prompt opens a reasoning block, so the assistant's turn must
    carry its reasoning to render as the model wrote it.
    """

    template: str
    parser: str
    special_tokens: tuple[str, ...]
    eos: str
    bos: str | None = None
    string_arguments: bool = False
    empty_content: bool = False
    call_id: str = "call_1_0"
    reasoning: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    """Known failures, by property: what the template does that breaks it."""

    @property
    def id(self) -> str:
        return f"{self.template}-{self.parser}"

    def chat_template(self) -> str:
        return (TEMPLATES / f"{self.template}.jinja").read_text(encoding="utf-8")

    def call_message(self, content: str | None = None) -> dict[str, Any]:
        """The assistant turn with one ``get_weather`` call, in the form this template takes."""
        arguments: Any = json.dumps(ARGUMENTS) if self.string_arguments else dict(ARGUMENTS)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content if content is not None else ("" if self.empty_content else None),
            "tool_calls": [
                {
                    "id": self.call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        }
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        return message

    def conversation(self) -> list[dict[str, Any]]:
        """System, user, an assistant tool call, the tool's result."""
        return [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            self.call_message(),
            {
                "role": "tool",
                "tool_call_id": self.call_id,
                "name": "get_weather",
                "content": "sunny",
            },
        ]


_CHATML = ("<|im_start|>", "<|im_end|>")
_LLAMA3 = (
    "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
    "<|python_tag|>",
)  # fmt: skip
_DEEPSEEK = (
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>",
)  # fmt: skip

FAMILIES = [
    Family("qwen3_coder", "qwen3_xml", _CHATML, "<|im_end|>"),
    Family("qwen3_5", "qwen3_xml", _CHATML, "<|im_end|>"),
    Family("qwen2_5", "hermes", _CHATML, "<|im_end|>"),
    Family(
        "qwen3",
        "hermes",
        _CHATML,
        "<|im_end|>",
        notes={"continue": "drops the <think> block of earlier turns once a message follows"},
    ),
    Family(
        "gpt_oss",
        "harmony",
        (
            "<|start|>",
            "<|end|>",
            "<|message|>",
            "<|channel|>",
            "<|constrain|>",
            "<|call|>",
            "<|return|>",
        ),
        "<|return|>",
    ),
    Family(
        "deepseek_v3",
        "deepseek_v3",
        _DEEPSEEK,
        "<｜end▁of▁sentence｜>",
        bos="<｜begin▁of▁sentence｜>",
        string_arguments=True,
        empty_content=True,
        notes={
            "turn": "the generation prompt opens <think> (R1 era), the rendered tool-call turn "
            "has none",
        },
    ),
    Family(
        "deepseek_v31",
        "deepseek_v31",
        _DEEPSEEK,
        "<｜end▁of▁sentence｜>",
        bos="<｜begin▁of▁sentence｜>",
        string_arguments=True,
        empty_content=True,
    ),
    Family(
        "glm45",
        "glm45",
        (
            "[gMASK]",
            "<sop>",
            "<|system|>",
            "<|user|>",
            "<|assistant|>",
            "<|observation|>",
            "<|endoftext|>",
        ),
        "<|endoftext|>",
    ),
    Family("llama3_1", "llama3_json", _LLAMA3, "<|eot_id|>", bos="<|begin_of_text|>"),
    Family(
        "llama3_2_pythonic",
        "pythonic",
        _LLAMA3,
        "<|eot_id|>",
        bos="<|begin_of_text|>",
        notes={
            "parse": "vLLM's template writes string values unquoted ('%s' format): "
            "[get_weather(city=Paris, days=3)] is not Python",
        },
    ),
    Family(
        "mistral_small_3_1",
        "mistral",
        (
            "<s>",
            "</s>",
            "[INST]",
            "[/INST]",
            "[TOOL_CALLS]",
            "[AVAILABLE_TOOLS]",
            "[/AVAILABLE_TOOLS]",
            "[TOOL_RESULTS]",
            "[/TOOL_RESULTS]",
            "[SYSTEM_PROMPT]",
            "[/SYSTEM_PROMPT]",
        ),
        "</s>",
        bos="<s>",
        string_arguments=False,
        call_id="a1b2c3d4e",
    ),
    Family(
        "internlm2",
        "internlm",
        ("<s>", *_CHATML, "<|action_start|>", "<|action_end|>", "<|plugin|>"),
        "<|im_end|>",
        bos="<s>",
        string_arguments=True,
    ),
    Family(
        "kimi_k2_thinking",
        "kimi_k2",
        (
            "<|im_system|>",
            "<|im_user|>",
            "<|im_assistant|>",
            "<|im_middle|>",
            "<|im_end|>",
            "<|tool_calls_section_begin|>",
            "<|tool_calls_section_end|>",
            "<|tool_call_begin|>",
            "<|tool_call_argument_begin|>",
            "<|tool_call_end|>",
        ),
        "<|im_end|>",
        call_id="functions.get_weather:0",
    ),
    Family(
        "minimax_m2",
        "minimax_m2",
        ("]~!b[", "]~b]", "[e~["),
        "[e~[",
        reasoning="The user wants the weather.",
    ),
    Family(
        "gemma4",
        "gemma4",
        (
            "<bos>",
            "<eos>",
            "<|turn>",
            "<turn|>",
            "<|tool_call>",
            "<tool_call|>",
            "<|tool>",
            "<tool|>",
            "<|tool_response>",
            "<tool_response|>",
            '<|"|>',
            "<|channel>",
            "<channel|>",
        ),
        "<eos>",
        bos="<bos>",
    ),
    Family(
        "phi4_mini",
        "phi4_mini",
        ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|tool|>", "<|endoftext|>"),
        "<|end|>",
        string_arguments=True,
        notes={
            "parse": "vLLM's template writes the call without the functools marker",
            "continue": "vLLM's template always ends with <|assistant|>, generation prompt or not",
        },
    ),
]


@cache
def tokenizer_for(family: Family) -> Any:
    """A byte-level BPE tokenizer trained in-process on a few words of the episode (no download),
    with the family's markers as special tokens, its EOS/BOS, and its real chat template."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    specials = ["<pad>", *dict.fromkeys((*family.special_tokens, family.eos))]
    if family.bos:
        specials.append(family.bos)
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=list(dict.fromkeys(specials)),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = (
        "get_weather city Paris days 3 sunny It is sunny in Paris. Weather in Paris? "
        '<tool_call> </tool_call> <function= <parameter= {"name": "arguments": assistant user'
    )
    # the template's own text too, so its system prompts come out as a few hundred tokens
    raw.train_from_iterator([corpus] * 20 + [family.chat_template()] * 5, trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token=family.eos,
        bos_token=family.bos,
        pad_token="<pad>",
        chat_template=family.chat_template(),
        name_or_path=f"tests/tools/templates/{family.template}.jinja",
    )
