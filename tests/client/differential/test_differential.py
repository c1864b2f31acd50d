"""Differential tests: clarion.client against pusher-js 8 under the same faults.

Each scenario runs once with pusher-js in Node and once with clarion.client,
at the same time, each through its own fault proxy to one Clarion server. The
sequences of `state_change` events must be equal, and pusher-js's must be the
one it is known to produce (see differential_scenarios). So must the
`connecting_in` and coded `error` events around them, and what the proxy saw
the client resubscribe after a reconnect.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from differential_auth import AuthEndpoint
from differential_clients import (
    ClarionClient,
    ClientOptions,
    PusherJsClient,
    RecordingClient,
)
from differential_scenarios import SCENARIOS, Scenario, ScenarioContext
from fault_proxy import FaultProxy

from clarion.rest import RestClient

pytestmark = pytest.mark.timeout(60)


@dataclass
class Outcome:
    """What one client did in one scenario."""

    client: str
    transitions: list[str]
    events: list[str]
    observations: dict[str, Any]
    records: list[dict[str, Any]]


async def run_scenario(
    scenario: Scenario,
    client: RecordingClient,
    proxy: FaultProxy,
    auth: AuthEndpoint,
    rest: RestClient,
) -> Outcome:
    """Run `scenario` with `client` through `proxy`, then stop both."""
    context = ScenarioContext(client, proxy, auth, rest, client.options.user_id)
    try:
        await client.start()
        await scenario.run(context)
    finally:
        await client.close()
        await proxy.close()
    return Outcome(
        client.name,
        client.transitions(),
        client.connection_events(),
        context.observations,
        client.records,
    )


async def start_proxy(server: Any) -> FaultProxy:
    proxy = FaultProxy(server.host, server.port)
    await proxy.start()
    return proxy


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
async def test_client_state_changes_match_pusher_js(
    scenario: Scenario,
    server: Any,
    auth_endpoint: AuthEndpoint,
    rest: RestClient,
    tmp_path: Path,
) -> None:
    """clarion.client goes through the same state changes as pusher-js 8."""

    def options(proxy: FaultProxy, user_id: str) -> ClientOptions:
        return ClientOptions(
            key=scenario.key or server.key,
            port=proxy.port,
            auth_url=auth_endpoint.base_url,
            user_id=user_id,
        )

    pusher_js_proxy = await start_proxy(server)
    clarion_proxy = await start_proxy(server)
    pusher_js = PusherJsClient(
        options(pusher_js_proxy, "pusher-js-user"), tmp_path / "pusher-js.log"
    )
    clarion = ClarionClient(options(clarion_proxy, "clarion-user"))
    results = await asyncio.gather(
        run_scenario(scenario, pusher_js, pusher_js_proxy, auth_endpoint, rest),
        run_scenario(scenario, clarion, clarion_proxy, auth_endpoint, rest),
        return_exceptions=True,
    )
    outcomes = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        outcomes.append(result)
    reference, candidate = outcomes

    assert reference.transitions == scenario.expected, reference.records
    assert reference.observations == scenario.expected_observations
    assert candidate.transitions == reference.transitions, candidate.records
    assert candidate.observations == reference.observations
    assert candidate.events == reference.events
