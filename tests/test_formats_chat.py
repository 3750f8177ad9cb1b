"""Chat data sets as workloads, one tiny file of each: TRL's conversational prompt-completion lines
(``{"prompt": [messages], "completion": [messages]}``) were refused as "'prompt' must be text", without a word of
what they are; the error now says how to write them as a conversation, which is read (as OpenAI's chat format)."""

from __future__ import annotations

import json

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads.loaders import load_workload

PROMPT = [{"role": "user", "content": "What color is the sky on a clear day?"}]
COMPLETION = [{"role": "assistant", "content": "It is blue on a clear day, because of Rayleigh scattering."}]


def test_trl_conversational_prompt_completion_lines_are_refused_saying_how_to_write_them(tmp_path, capsys):
    path = tmp_path / "trl.jsonl"
    path.write_text(json.dumps({"prompt": PROMPT, "completion": COMPLETION}) + "\n")
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(path)),
                          "trl.jsonl:1: 'prompt' must be text (a JSON string), got [{\"role\": \"user\"",
                          "it is a list of chat messages (TRL's conversational prompt-completion format): write each "
                          "line as one conversation, {\"messages\": prompt + completion}")


def test_the_conversation_written_as_the_hint_says_is_read(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": PROMPT + COMPLETION}) + "\n")
    wl = load_workload(str(path))
    assert len(wl) == 1 and wl.df["prompt"].to_list() == [PROMPT[0]["content"]]
