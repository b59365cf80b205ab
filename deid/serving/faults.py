"""Fault injection for resilience tests against the real server, in the manner of a service mesh's fault filter:
rules in the serve config's `faults:` list wrap the engine, so an injected failure takes the server's real
error path. A rule fires when its `when` string occurs in the request's last message; production configs
have no `faults:` section and then the engine is not wrapped at all.

    faults:
      - {when: "<fault:http_500>", action: error}              # the engine raises: the server answers 500
      - {when: "<fault:slow>", action: delay, seconds: 30}     # the answer comes late
      - {when: "<fault:malformed>", action: malformed}         # the answer is not what the prompt asked for
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from deid.serving.engines import completion

ACTIONS = ("error", "delay", "malformed")
MALFORMED = "抱歉，我无法完成这个任务。"


class InjectedFault(RuntimeError):
    pass


@dataclass(frozen=True)
class FaultRule:
    when: str
    action: str
    seconds: float = 0.0
    content: str = MALFORMED

    def __post_init__(self):
        if not self.when or self.action not in ACTIONS:
            raise ValueError(f"a fault rule needs a non-empty `when` and an action among {', '.join(ACTIONS)}")


class FaultyEngine:
    def __init__(self, engine, rules: list[FaultRule]):
        self.engine = engine
        self.rules = rules
        self.model_name = engine.model_name

    def _rule(self, request: dict) -> FaultRule | None:
        last = str((request.get("messages") or [{}])[-1].get("content", ""))
        return next((r for r in self.rules if r.when in last), None)

    async def complete(self, request: dict) -> dict:
        rule = self._rule(request)
        if rule is None:
            return await self.engine.complete(request)
        if rule.action == "error":
            raise InjectedFault("injected engine failure")
        if rule.action == "delay":
            await asyncio.sleep(rule.seconds)
            return await self.engine.complete(request)
        return completion(self.model_name, rule.content, "stop", 0, 0)   # no generation: only the answer matters


def with_faults(engine, config: list[dict] | None):
    return FaultyEngine(engine, [FaultRule(**r) for r in config]) if config else engine
