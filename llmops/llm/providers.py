"""Our ``local/`` (embedded GGUF model) and ``fake/`` (scripted) providers, registered in LiteLLM.

They enter through LiteLLM's custom-provider door, the same one any third-party plugin uses, so
tests exercise the real LiteLLM path.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from llmops.errors import LLMOpsError

OUR_PROVIDERS = ("local", "fake")

# litellm wraps any exception of a custom handler in APIConnectionError (retryable) and its own
# error handling replaces ``__context__``; so a UserError for a missing GGUF file would be retried
# as a connection error. Handlers put their LLMOpsError in this per-call box instead.
_own_errors: contextvars.ContextVar[list[LLMOpsError] | None] = contextvars.ContextVar(
    "llmops_own_errors", default=None)


def _keep_own_error(err: LLMOpsError) -> None:
    box = _own_errors.get()
    if box is not None:
        box.append(err)



@contextlib.contextmanager
def collect_own_errors() -> Iterator[list[LLMOpsError]]:
    """Collect the LLMOpsErrors our providers raise during the block (litellm wraps them)."""
    box: list[LLMOpsError] = []
    token = _own_errors.set(box)
    try:
        yield box
    finally:
        _own_errors.reset(token)


def register_providers(litellm: Any) -> None:
    """Register ``local/`` and ``fake/`` as LiteLLM custom providers (the same door as any plugin)."""
    from litellm.llms.custom_llm import CustomLLM

    from llmops.llm import fake
    from llmops.llm.local import runtime

    def fill(model_response: Any, text: str, finish: str, prompt_tokens: int,
             completion_tokens: int, model: str, tool_calls: tuple[Any, ...] = ()) -> Any:
        model_response.choices[0].message.content = text if text or not tool_calls else None
        if tool_calls:
            from litellm.types.utils import ChatCompletionMessageToolCall, Function

            model_response.choices[0].message.tool_calls = [
                ChatCompletionMessageToolCall(id=call.id or f"call_{i}", type="function",
                                              function=Function(name=call.name, arguments=call.raw()))
                for i, call in enumerate(tool_calls)]
        model_response.choices[0].finish_reason = finish
        model_response.model = model
        model_response.usage = litellm.Usage(prompt_tokens=prompt_tokens,
                                             completion_tokens=completion_tokens,
                                             total_tokens=prompt_tokens + completion_tokens)
        return model_response

    def fake_error(model: str, step: fake.FakeError) -> Exception:
        import httpx

        headers = {"retry-after": str(step.retry_after)} if step.retry_after is not None else {}
        response = httpx.Response(step.status, headers=headers,
                                  request=httpx.Request("POST", "http://fake.invalid/v1/chat"))
        kwargs = {"message": step.message, "llm_provider": "fake", "model": model}
        by_status: dict[int, Any] = {
            401: litellm.AuthenticationError, 404: litellm.NotFoundError,
            429: litellm.RateLimitError, 503: litellm.ServiceUnavailableError,
            500: litellm.InternalServerError, 400: litellm.BadRequestError,
        }
        cls = by_status.get(step.status)
        error: Exception
        if cls is None:
            error = litellm.APIError(status_code=step.status, request=response.request, **kwargs)
        elif cls in (litellm.BadRequestError,):
            error = cls(**kwargs)
        else:
            error = cls(response=response, **kwargs)
        return error

    class _Local(CustomLLM):
        def completion(self, *args: Any, **kw: Any) -> Any:
            try:
                result = runtime().generate(kw["model"], kw["messages"], kw.get("optional_params") or {})
            except LLMOpsError as err:
                _keep_own_error(err)
                raise
            return fill(kw["model_response"], result.text, result.finish_reason, result.prompt_tokens,
                        result.completion_tokens, f"local/{kw['model']}", result.tool_calls)

        async def acompletion(self, *args: Any, **kw: Any) -> Any:
            return await asyncio.to_thread(self.completion, *args, **kw)

    class _Fake(CustomLLM):
        def _answer(self, kw: dict[str, Any], step: Any) -> Any:
            if isinstance(step, fake.FakeError):
                raise fake_error(kw["model"], step)
            reply = step if isinstance(step, fake.FakeReply) else fake.FakeReply(text=str(step))
            prompt_tokens = reply.prompt_tokens
            if prompt_tokens is None:
                prompt_tokens = sum(fake.count_tokens(str(m.get("content") or "")) for m in kw["messages"])
            completion_tokens = reply.completion_tokens
            if completion_tokens is None:
                completion_tokens = fake.count_tokens(reply.text) + sum(
                    fake.count_tokens(call.raw()) for call in reply.tool_calls)
            return fill(kw["model_response"], reply.text, reply.finish, prompt_tokens,
                        completion_tokens, f"fake/{kw['model']}", reply.tool_calls)

        def _step(self, kw: dict[str, Any]) -> Any:
            try:
                return fake.next_step(kw["model"], kw["messages"], kw.get("optional_params") or {})
            except LLMOpsError as err:  # a responder raised one of ours: keep it unwrapped
                _keep_own_error(err)
                raise

        def completion(self, *args: Any, **kw: Any) -> Any:
            step = self._step(kw)
            time.sleep(fake.blocking_delay(step))
            return self._answer(kw, step)

        async def acompletion(self, *args: Any, **kw: Any) -> Any:
            step = self._step(kw)
            await asyncio.sleep(fake.blocking_delay(step))
            return self._answer(kw, step)

        async def astreaming(self, *args: Any, **kw: Any) -> AsyncIterator[Any]:  # type: ignore[override]
            step = self._step(kw)
            await asyncio.sleep(fake.blocking_delay(step))
            if isinstance(step, fake.FakeError):
                raise fake_error(kw["model"], step)
            reply = step if isinstance(step, fake.FakeReply) else fake.FakeReply(text=str(step))
            answer = self._answer(kw, reply)
            words = reply.text.split(" ")
            texts = [w + " " for w in words[:-1]] + [words[-1]] if reply.text else []
            for index, text in enumerate(texts):
                if reply.break_after is not None and index >= reply.break_after:
                    raise ConnectionResetError("scripted: the stream broke")
                if index and reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                yield {"text": text, "tool_use": None, "is_finished": False, "finish_reason": "", "usage": None,
                       "index": 0}
            for index, call in enumerate(reply.tool_calls):
                yield {"text": "", "is_finished": False, "finish_reason": "", "usage": None, "index": 0,
                       "tool_use": {"id": call.id or f"call_{index}", "type": "function", "index": index,
                                    "function": {"name": call.name, "arguments": call.raw()}}}
            usage = answer.usage
            yield {"text": "", "tool_use": None, "is_finished": True, "finish_reason": reply.finish, "index": 0,
                   "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                             "total_tokens": usage.total_tokens}}

    existing = [p for p in (litellm.custom_provider_map or []) if p.get("provider") not in OUR_PROVIDERS]
    litellm.custom_provider_map = [*existing, {"provider": "local", "custom_handler": _Local()},
                                   {"provider": "fake", "custom_handler": _Fake()}]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()  # type: ignore[no-untyped-call]

