"""One async client for any OpenAI-compatible chat endpoint, with presets, typed errors and reasoning kept apart."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

from .answer import split_reasoning


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key_env: str | None  # None: the server takes no key (local servers)
    model: str  # this provider's id for DeepSeek-R1; model ids get retired, so `--model` overrides it


DEFAULT_MODEL = "deepseek-r1"  # the model name for a server given by URL alone
# Base URLs and the API-key variable each provider documents.
ENDPOINTS = {
    "nim": Endpoint("https://integrate.api.nvidia.com/v1", "NVIDIA_API_KEY", "deepseek-ai/deepseek-r1"),
    "deepseek": Endpoint("https://api.deepseek.com", "DEEPSEEK_API_KEY", DEFAULT_MODEL),
    "openrouter": Endpoint("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "deepseek/deepseek-r1"),
    "openai": Endpoint("https://api.openai.com/v1", "OPENAI_API_KEY", DEFAULT_MODEL),
    "vllm": Endpoint("http://localhost:8000/v1", None, DEFAULT_MODEL),
    "sglang": Endpoint("http://localhost:30000/v1", None, DEFAULT_MODEL),
    "ollama": Endpoint("http://localhost:11434/v1", None, DEFAULT_MODEL),
}


@dataclass
class ModelConfig:
    endpoint: str = "nim"  # a name from ENDPOINTS; base_url/api_key_env/model below override its values
    base_url: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    # DeepSeek's guidance for R1: temperature 0.6, top_p 0.95, no system prompt; answers run to 32-64K tokens.
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    stream: bool = True  # proxies drop connections that stay silent for minutes; a stream never does
    # Longest wait for the next bytes: the whole answer when not streaming (R1 can think for 20+ minutes).
    timeout_s: float = 1800.0
    connect_timeout_s: float = 10.0
    max_retries: int = 5  # the SDK's backoff (0.5 s doubling to 8 s, or the server's Retry-After) on 408/429/5xx
    concurrency: int = 8  # calls in flight to this endpoint at once

    def resolved(self) -> "ModelConfig":
        """This config with the preset's values filled in; raises LLMError for an unknown preset."""
        if self.endpoint not in ENDPOINTS:
            raise LLMError(f"unknown endpoint preset {self.endpoint!r} (known: {', '.join(ENDPOINTS)}); "
                           "or give --base-url")
        preset = ENDPOINTS[self.endpoint]
        custom_url = self.base_url is not None and self.base_url.rstrip("/") != preset.base_url
        return ModelConfig(**{**asdict(self),
                              "base_url": (self.base_url or preset.base_url).rstrip("/"),
                              # a custom URL does not inherit the preset's key variable unless asked to
                              "api_key_env": self.api_key_env or (None if custom_url else preset.api_key_env),
                              "model": self.model or (DEFAULT_MODEL if custom_url else preset.model)})


@dataclass
class Completion:
    answer: str
    reasoning: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    elapsed_s: float = 0.0
    model: str = ""

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class LLMError(Exception):
    """A model call failed; `fatal` errors (bad key, unknown model, unreachable) end the run, others one attempt."""
    fatal = True


class MissingAPIKey(LLMError):
    pass


class EndpointUnreachable(LLMError):
    pass


class AuthenticationFailed(LLMError):
    pass


class ModelNotFound(LLMError):
    pass


class CallFailed(LLMError):
    """One call failed after its retries (rate limit, server error, timeout, dropped connection)."""
    fatal = False


@dataclass
class LLMClient:
    """`await client.complete(prompt)`; `await client.check()` once at start to fail fast on set-up mistakes."""
    config: ModelConfig
    _sdk: object = field(default=None, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import openai

        self.config = self.config.resolved()
        cfg = self.config
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if cfg.api_key_env and not key:
            raise MissingAPIKey(f"{cfg.api_key_env} is not set: export it (the key for {cfg.base_url}) "
                                "or name another variable with --api-key-env")
        self._sdk = openai.AsyncOpenAI(
            api_key=key or "no-key", base_url=cfg.base_url, max_retries=cfg.max_retries,
            timeout=openai.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s))

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # created lazily: it belongs to the event loop that first uses it
            self._slots = asyncio.Semaphore(self.config.concurrency)
        return self._slots

    async def check(self) -> list[str]:
        """Reach the endpoint and confirm the model through `GET /models` (skipped where the server has none)."""
        import openai

        cfg = self.config
        try:
            page = await self._sdk.with_options(max_retries=1, timeout=openai.Timeout(30.0, connect=5.0)).models.list()
            offered = [m.id for m in page.data]
        except openai.NotFoundError:
            return []  # the server has no model list; the first call will tell
        except Exception as e:
            raise _translate(e, cfg) from None
        if offered and cfg.model not in offered:
            shown = ", ".join(offered[:8]) + (" ..." if len(offered) > 8 else "")
            raise ModelNotFound(f"model {cfg.model!r} is not offered by {cfg.base_url} (it offers: {shown}); "
                                "pass --model")
        return offered

    async def complete(self, prompt: str, on_progress: Callable[[int], None] | None = None) -> Completion:
        """One chat completion. Reasoning models get no system prompt: everything is in the user turn.
        Streamed by default (`on_progress` hears the characters received so far); a stream that breaks midway
        is asked again, with the SDK's backoff, up to `max_retries` times."""
        import openai

        cfg = self.config
        request = dict(model=cfg.model, messages=[{"role": "user", "content": prompt}], temperature=cfg.temperature,
                       top_p=cfg.top_p, max_tokens=cfg.max_tokens)
        async with self.slots:
            began = time.monotonic()
            for retry in range(cfg.max_retries + 1):
                try:
                    if cfg.stream:
                        completion = await self._streamed(request, on_progress)
                    else:
                        completion = _from_response(await self._sdk.chat.completions.create(**request), cfg)
                    completion.elapsed_s = round(time.monotonic() - began, 3)
                    return completion
                except _StreamBroken as e:
                    if retry == cfg.max_retries:
                        raise CallFailed(f"the answer stream from {cfg.base_url} broke off {retry + 1} times "
                                         f"({e})") from None
                    await asyncio.sleep(min(8.0, 0.5 * 2 ** retry))
                except openai.OpenAIError as e:
                    raise _translate(e, cfg) from None
        raise AssertionError("unreachable")

    async def _streamed(self, request: dict, on_progress) -> Completion:
        stream = await self._sdk.chat.completions.create(**request, stream=True,
                                                         stream_options={"include_usage": True})
        answer, reasoning, finish, usage, received = [], [], None, None, 0
        try:
            async for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    delta = choice.delta
                    extra = delta.model_extra or {}
                    piece = extra.get("reasoning_content") or extra.get("reasoning") or ""
                    reasoning.append(piece)
                    answer.append(delta.content or "")
                    received += len(piece) + len(delta.content or "")
                    finish = choice.finish_reason or finish
                if on_progress:
                    on_progress(received)
        except Exception as e:  # the connection dropped or timed out after the answer had begun
            raise _StreamBroken(f"{type(e).__name__}: {e}") from None
        finally:
            await stream.close()
        if finish is None:
            raise _StreamBroken("the stream ended without a finish reason")
        return _completion("".join(answer), "".join(reasoning), finish, usage, request["model"])

    async def close(self) -> None:
        await self._sdk.close()


class _StreamBroken(Exception):
    """A streamed answer that broke off midway (the SDK retries only until the response begins)."""


def _from_response(response, cfg: ModelConfig) -> Completion:
    if not response.choices:
        raise CallFailed(f"{cfg.base_url} answered with no choices")
    choice = response.choices[0]
    message = choice.message
    # The SDK does not declare the reasoning fields; providers name them differently (see split_reasoning).
    extra = message.model_extra or {}
    field_reasoning = extra.get("reasoning_content") or extra.get("reasoning") or ""
    return _completion(message.content or "", field_reasoning, choice.finish_reason, response.usage,
                       response.model or cfg.model)


def _completion(content: str, field_reasoning: str, finish_reason, usage, model: str) -> Completion:
    reasoning, answer = split_reasoning(content, field_reasoning)
    details = getattr(usage, "completion_tokens_details", None) if usage else None
    return Completion(answer=answer, reasoning=reasoning, finish_reason=finish_reason,
                      prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                      completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                      reasoning_tokens=getattr(details, "reasoning_tokens", 0) or 0, model=model)


def _translate(e: Exception, cfg: ModelConfig) -> LLMError:
    """The SDK's exceptions as one-line errors that say what to do."""
    import openai

    where = cfg.base_url
    if isinstance(e, openai.APITimeoutError):
        return CallFailed(f"{where} did not answer within {cfg.timeout_s:.0f}s (after {cfg.max_retries} retries)")
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__ or e.__context__
        detail = f"{type(cause).__name__}: {cause}" if cause else str(e)
        host = urlparse(where).hostname or where
        if _refused_or_unresolved(cause):
            return EndpointUnreachable(f"cannot reach {where} ({detail}); is the server at {host} running "
                                       "and the URL right?")
        return CallFailed(f"connection to {where} failed after {cfg.max_retries} retries ({detail})")
    if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
        return AuthenticationFailed(f"{where} refused the API key from {cfg.api_key_env or 'no variable'} "
                                    f"(HTTP {e.status_code}): {_message(e)}")
    if isinstance(e, openai.NotFoundError):
        return ModelNotFound(f"{where} has no model {cfg.model!r} (HTTP 404): {_message(e)}; pass --model")
    if isinstance(e, openai.RateLimitError):
        return CallFailed(f"{where} kept rate-limiting (HTTP 429) after {cfg.max_retries} retries")
    if isinstance(e, openai.APIStatusError):
        error = CallFailed(f"{where} answered HTTP {e.status_code}: {_message(e)}")
        if e.status_code in (400, 422):  # the request itself is wrong (say, max_tokens too large): never fixes itself
            error = LLMError(str(error))
        return error
    return CallFailed(f"model call failed: {type(e).__name__}: {e}")


def _refused_or_unresolved(cause: BaseException | None) -> bool:
    text = f"{type(cause).__name__} {cause}".lower() if cause else ""
    return any(s in text for s in ("connecterror", "refused", "name or service", "nodename", "no address",
                                   "unreachable", "getaddrinfo"))


def _message(e) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        body = body.get("error", body)
        if isinstance(body, dict):
            body = body.get("message", body)
    return " ".join(str(body or e.message).split())[:200]
