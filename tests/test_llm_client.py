"""The model client against a real local HTTP server speaking the OpenAI protocol with scripted answers."""
from __future__ import annotations

import asyncio
import socket

import pytest

from .openai_server import ScriptedServer
from kernelsearch.llm.client import (ENDPOINTS, AuthenticationFailed, CallFailed, EndpointUnreachable, LLMClient,
                                     MissingAPIKey, ModelConfig, ModelNotFound)


def complete(url: str, **config):
    async def go():
        client = LLMClient(ModelConfig(base_url=url, **config))
        try:
            await client.check()
            return await client.complete("write a kernel")
        finally:
            await client.close()
    return asyncio.run(go())


LONG = "a long line of thought " * 10  # longer than one streamed piece, so it arrives in several


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("step, reasoning", [
    ({"content": "answer", "reasoning_content": LONG}, LONG.strip()),
    ({"content": "answer", "reasoning": "vllm style"}, "vllm style"),
    ({"content": f"<think>{LONG}</think>answer"}, LONG.strip()),
    ({"content": "no opening tag</think>answer"}, "no opening tag"),
])
def test_reasoning_is_kept_apart_from_the_answer(step, reasoning, stream):
    with ScriptedServer([{**step, "reasoning_tokens": 7, "completion_tokens": 11}]) as server:
        result = complete(server.url, stream=stream)
    assert (result.reasoning, result.answer, result.finish_reason) == (reasoning, "answer", "stop")
    assert (result.reasoning_tokens, result.completion_tokens, result.prompt_tokens) == (7, 11, 3)
    assert server.requests[0].get("stream", False) == stream


def test_a_stream_that_breaks_off_is_asked_again():
    step = {"content": "the answer " * 20, "reasoning_content": LONG}
    with ScriptedServer([{**step, "drop_after": 3}, step]) as server:
        result = complete(server.url)
    assert result.answer == step["content"].strip() and len(server.requests) == 2


def test_a_stream_that_keeps_breaking_is_a_non_fatal_error():
    with ScriptedServer([], default={"content": "x " * 100, "drop_after": 2}) as server:
        with pytest.raises(CallFailed, match="broke off 3 times") as error:
            complete(server.url, max_retries=2)
    assert not error.value.fatal


def test_truncated_answers_are_marked():
    with ScriptedServer([{"content": "```python\nclass ModelNew", "finish_reason": "length"}]) as server:
        assert complete(server.url).truncated


def test_request_follows_reasoning_model_guidance():
    with ScriptedServer([{"content": "ok"}]) as server:
        complete(server.url, max_tokens=1234)
    body = server.requests[0]
    assert [m["role"] for m in body["messages"]] == ["user"]  # no system prompt
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["model"]) == (0.6, 0.95, 1234, "deepseek-r1")
    assert body["stream"] and body["stream_options"] == {"include_usage": True}  # token counts come at the end


@pytest.mark.parametrize("failure", [{"status": 429}, {"status": 503}, {"drop": True}])
def test_transient_failures_are_retried(failure):
    with ScriptedServer([failure, failure, {"content": "finally"}]) as server:
        result = complete(server.url)
    assert result.answer == "finally"
    assert len(server.requests) == 3


def test_persistent_rate_limit_is_a_non_fatal_error():
    with ScriptedServer([{"status": 429}] * 3) as server:
        with pytest.raises(CallFailed, match="429") as error:
            complete(server.url, max_retries=2)
    assert not error.value.fatal and len(server.requests) == 3


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="NVIDIA_API_KEY is not set"):
        LLMClient(ModelConfig(endpoint="nim"))


def test_wrong_key_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("KS_TEST_KEY", "wrong")
    with ScriptedServer([], api_key="right") as server:
        with pytest.raises(AuthenticationFailed, match="refused the API key from KS_TEST_KEY") as error:
            complete(server.url, api_key_env="KS_TEST_KEY")
    assert "\n" not in str(error.value) and "wrong" not in str(error.value)  # never echo the key


def test_right_key_is_sent(monkeypatch):
    monkeypatch.setenv("KS_TEST_KEY", "right")
    with ScriptedServer([{"content": "ok"}], api_key="right") as server:
        assert complete(server.url, api_key_env="KS_TEST_KEY").answer == "ok"


def test_unreachable_endpoint_is_one_clear_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EndpointUnreachable, match=f"cannot reach http://127.0.0.1:{port}/v1") as error:
        complete(f"http://127.0.0.1:{port}/v1")
    assert "\n" not in str(error.value)


def test_model_missing_from_the_server_list():
    with ScriptedServer([], models=["qwen-coder", "deepseek-r1-distill"]) as server:
        with pytest.raises(ModelNotFound, match="it offers: qwen-coder, deepseek-r1-distill"):
            complete(server.url)


def test_servers_without_a_model_list_are_not_refused():
    with ScriptedServer([{"content": "ok"}], models=None) as server:
        assert complete(server.url).answer == "ok"


def test_presets_resolve_url_key_and_model():
    nim = ModelConfig(endpoint="nim").resolved()
    assert (nim.base_url, nim.api_key_env, nim.model) == (ENDPOINTS["nim"].base_url, "NVIDIA_API_KEY",
                                                          "deepseek-ai/deepseek-r1")
    assert ModelConfig(endpoint="ollama").resolved().api_key_env is None
    custom = ModelConfig(base_url="http://gpu-box:8000/v1/").resolved()
    assert (custom.base_url, custom.api_key_env, custom.model) == ("http://gpu-box:8000/v1", None, "deepseek-r1")
    assert ModelConfig(endpoint="deepseek", model="my-r1").resolved().model == "my-r1"
