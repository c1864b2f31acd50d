"""HTTP API request signing, routing, status codes and connection handling."""

from __future__ import annotations

import asyncio
import http.client
import time

import pytest
from clarion_e2e import (
    EMPTY_BODY_MD5,
    ApiClient,
    ApiResponse,
    compact,
    hmac_sha256_hex,
    md5_hex,
    string_to_sign,
)
from clarion_launch import DISABLED_APP, RunningServer

TRIGGER_BODY = compact({"name": "e", "channel": "auth-test", "data": "d"}).encode()


def assert_error_body(response: ApiResponse, status: int) -> None:
    """Check the status and the JSON error shape {"error": str, "code": status}."""
    assert response.status == status
    body = response.json()
    assert isinstance(body.get("error"), str)
    assert body.get("code") == status


def post_events(api: ApiClient, **signing: object) -> ApiResponse:
    return api.signed("POST", api.app_path("/events"), TRIGGER_BODY, **signing)


# Published and verified signing vectors: key 278d425bdf160c739803, secret
# 7ad3773142a6692b25b8, timestamp 1353088179.
SIGNING_VECTORS = [
    (
        "POST",
        "/apps/3/events",
        {"body_md5": "ec365a775a4cd0599faeb73354201b6f"},
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
    ),
    (
        "GET",
        "/apps/3/channels",
        {
            "body_md5": EMPTY_BODY_MD5,
            "filter_by_prefix": "presence-",
            "info": "user_count",
        },
        "f3f17c61ae491cc9085db68b22076e9b772e3bcb301659d655153ee3f9782aba",
    ),
    (
        "GET",
        "/apps/3/channels",
        {"filter_by_prefix": "presence-", "info": "user_count"},
        "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291",
    ),
    (
        "POST",
        "/apps/3/batch_events",
        {"body_md5": "755107b0f0a0f3a17bbb68ae3871f8b4"},
        "008cb7e3c77c1ca08cd0048c69c1fb15a446ee2d35944e7037849c8ad27a3c27",
    ),
]


@pytest.mark.parametrize(("method", "path", "extra", "expected"), SIGNING_VECTORS)
def test_signer_matches_known_vectors(
    method: str, path: str, extra: dict[str, str], expected: str
) -> None:
    """The test signer reproduces the known request signatures."""
    params = {
        "auth_key": "278d425bdf160c739803",
        "auth_timestamp": "1353088179",
        "auth_version": "1.0",
        **extra,
    }
    text = string_to_sign(method, path, params)
    assert hmac_sha256_hex("7ad3773142a6692b25b8", text) == expected


async def test_auth_valid_post_200(api: ApiClient) -> None:
    """A correctly signed POST with body_md5 is accepted with body {}."""
    response = await asyncio.to_thread(post_events, api)
    assert response.status == 200
    assert response.json() == {}


async def test_auth_success_is_json(api: ApiClient) -> None:
    """Success replies are sent as application/json."""
    response = await asyncio.to_thread(post_events, api)
    assert response.headers.get("content-type", "").startswith("application/json")


async def test_auth_bad_signature_401(api: ApiClient) -> None:
    """A signature made with the wrong secret gives 401."""
    wrong = ApiClient(api.host, api.port, api.app_id, api.key, "not-the-secret")
    response = await asyncio.to_thread(post_events, wrong)
    assert_error_body(response, 401)


async def test_auth_tampered_body_401(api: ApiClient) -> None:
    """A body changed after signing (body_md5 mismatch) gives 401."""
    params = api.signed_params("POST", api.app_path("/events"), TRIGGER_BODY)
    other_body = TRIGGER_BODY.replace(b'"d"', b'"x"')
    response = await asyncio.to_thread(
        api.send, "POST", api.app_path("/events"), params, other_body
    )
    assert_error_body(response, 401)


async def test_auth_wrong_body_md5_401(api: ApiClient) -> None:
    """A signed but wrong body_md5 gives 401."""
    path = api.app_path("/events")
    params = {
        "auth_key": api.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": md5_hex(b"something else"),
    }
    params["auth_signature"] = hmac_sha256_hex(
        api.secret, string_to_sign("POST", path, params)
    )
    response = await asyncio.to_thread(api.send, "POST", path, params, TRIGGER_BODY)
    assert_error_body(response, 401)


async def test_auth_missing_body_md5_401(api: ApiClient) -> None:
    """A non-empty body signed without body_md5 gives 401."""
    response = await asyncio.to_thread(post_events, api, body_md5=False)
    assert_error_body(response, 401)


@pytest.mark.parametrize(
    "missing", ["auth_key", "auth_timestamp", "auth_version", "auth_signature"]
)
async def test_auth_missing_param_401(api: ApiClient, missing: str) -> None:
    """Leaving out any auth parameter gives 401."""
    path = api.app_path("/channels")
    params = api.signed_params("GET", path)
    del params[missing]
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert_error_body(response, 401)


async def test_auth_unsigned_request_401(api: ApiClient) -> None:
    """A request without any query parameters gives 401."""
    response = await asyncio.to_thread(api.send, "GET", api.app_path("/channels"))
    assert_error_body(response, 401)


async def test_auth_wrong_version_401(api: ApiClient) -> None:
    """auth_version other than 1.0, even if signed, gives 401."""
    path = api.app_path("/channels")
    params = {
        "auth_key": api.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "2.0",
    }
    params["auth_signature"] = hmac_sha256_hex(
        api.secret, string_to_sign("GET", path, params)
    )
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert_error_body(response, 401)


async def test_auth_wrong_key_401(api: ApiClient) -> None:
    """An auth_key of another app, signed with that app's secret, gives 401."""
    other = ApiClient(api.host, api.port, api.app_id, "other-key", "other-secret")
    response = await asyncio.to_thread(other.get, api.app_path("/channels"))
    assert_error_body(response, 401)


@pytest.mark.parametrize("offset", [-601, 601, -3600])
async def test_auth_stale_timestamp_401(api: ApiClient, offset: int) -> None:
    """A timestamp more than 600 s from server time gives 401."""
    timestamp = int(time.time()) + offset
    response = await asyncio.to_thread(post_events, api, timestamp=timestamp)
    assert_error_body(response, 401)


@pytest.mark.parametrize("offset", [-590, 590])
async def test_auth_timestamp_in_window_200(api: ApiClient, offset: int) -> None:
    """A timestamp within 600 s of server time is accepted."""
    timestamp = int(time.time()) + offset
    response = await asyncio.to_thread(post_events, api, timestamp=timestamp)
    assert response.status == 200


async def test_auth_non_numeric_timestamp_401(api: ApiClient) -> None:
    """A timestamp that is not a number gives 401."""
    path = api.app_path("/channels")
    params = {"auth_key": api.key, "auth_timestamp": "soon", "auth_version": "1.0"}
    params["auth_signature"] = hmac_sha256_hex(
        api.secret, string_to_sign("GET", path, params)
    )
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert_error_body(response, 401)


async def test_auth_get_with_empty_body_md5_200(api: ApiClient) -> None:
    """A GET signed with body_md5 of the empty body (Python SDK style) is accepted."""
    path = api.app_path("/channels")
    params = api.signed_params("GET", path, body_md5=True)
    assert params["body_md5"] == EMPTY_BODY_MD5
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert response.status == 200


async def test_auth_get_without_body_md5_200(api: ApiClient) -> None:
    """A GET signed without body_md5 (Node SDK style) is accepted."""
    response = await asyncio.to_thread(api.get, api.app_path("/channels"))
    assert response.status == 200


async def test_auth_get_wrong_empty_md5_401(api: ApiClient) -> None:
    """A GET with a signed body_md5 that is not the empty-body MD5 gives 401."""
    path = api.app_path("/channels")
    params = {
        "auth_key": api.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": md5_hex(b"x"),
    }
    params["auth_signature"] = hmac_sha256_hex(
        api.secret, string_to_sign("GET", path, params)
    )
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert_error_body(response, 401)


async def test_auth_extra_param_is_signed(api: ApiClient) -> None:
    """A query parameter added after signing breaks the signature (401)."""
    path = api.app_path("/channels")
    params = api.signed_params("GET", path)
    params["filter_by_prefix"] = "presence-"
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert_error_body(response, 401)


async def test_auth_signature_uppercase_hex_401(api: ApiClient) -> None:
    """The signature must be the exact lowercase hex digest."""
    path = api.app_path("/channels")
    params = api.signed_params("GET", path)
    params["auth_signature"] = params["auth_signature"].upper()
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert_error_body(response, 401)


async def test_route_unknown_app_404(api: ApiClient) -> None:
    """An unknown app id gives 404, even when signed."""
    stranger = ApiClient(api.host, api.port, "999", api.key, api.secret)
    response = await asyncio.to_thread(stranger.get, "/apps/999/channels")
    assert_error_body(response, 404)


async def test_route_unknown_app_unsigned_404(api: ApiClient) -> None:
    """Route and app are checked before the signature: unsigned gives 404."""
    response = await asyncio.to_thread(api.send, "GET", "/apps/999/channels")
    assert_error_body(response, 404)


@pytest.mark.parametrize(
    "path", ["/apps/1/nothing", "/nothing", "/apps/1", "/apps/1/channels/a/b/c"]
)
async def test_route_unknown_path_404(api: ApiClient, path: str) -> None:
    """A path that is no API route gives 404."""
    response = await asyncio.to_thread(api.get, path)
    assert_error_body(response, 404)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", "/events"),
        ("GET", "/batch_events"),
        ("POST", "/channels"),
        ("POST", "/channels/some-channel"),
        ("POST", "/channels/presence-x/users"),
        ("PUT", "/events"),
        ("DELETE", "/channels"),
    ],
)
async def test_route_wrong_method_405(api: ApiClient, method: str, suffix: str) -> None:
    """A known route with the wrong method gives 405."""
    response = await asyncio.to_thread(api.signed, method, api.app_path(suffix))
    assert_error_body(response, 405)


async def test_disabled_app_403(shared_server: RunningServer) -> None:
    """A correctly signed request for a disabled app gives 403."""
    disabled = shared_server.api(DISABLED_APP)
    response = await asyncio.to_thread(post_events, disabled)
    assert_error_body(response, 403)


async def test_disabled_app_bad_signature_401(shared_server: RunningServer) -> None:
    """The signature is checked before the enabled flag: bad signature gives 401."""
    disabled = shared_server.api(DISABLED_APP)
    wrong = ApiClient(
        disabled.host, disabled.port, disabled.app_id, disabled.key, "nope"
    )
    response = await asyncio.to_thread(post_events, wrong)
    assert_error_body(response, 401)


async def test_body_over_limit_413(api: ApiClient) -> None:
    """A body over max_body_bytes (1 MiB by default) gives 413."""
    padding = "p" * (1024 * 1024)
    body = compact({"name": "e", "channel": "c", "data": "d", "pad": padding}).encode()
    assert len(body) > 1024 * 1024
    response = await asyncio.to_thread(
        api.signed, "POST", api.app_path("/events"), body
    )
    assert_error_body(response, 413)


async def test_keep_alive_two_requests(api: ApiClient) -> None:
    """Two requests share one TCP connection."""

    def two_requests() -> tuple[ApiResponse, ApiResponse, bool]:
        connection = http.client.HTTPConnection(api.host, api.port, timeout=5)
        try:
            first = api.signed(
                "POST", api.app_path("/events"), TRIGGER_BODY, connection=connection
            )
            first_socket = connection.sock
            second = api.signed("GET", api.app_path("/channels"), connection=connection)
            same_socket = first_socket is not None and connection.sock is first_socket
            return first, second, same_socket
        finally:
            connection.close()

    first, second, same_socket = await asyncio.to_thread(two_requests)
    assert first.status == 200
    assert second.status == 200
    assert same_socket


async def test_keep_alive_after_error(api: ApiClient) -> None:
    """A 4xx reply keeps the connection usable for the next request."""

    def error_then_success() -> tuple[ApiResponse, ApiResponse]:
        connection = http.client.HTTPConnection(api.host, api.port, timeout=5)
        try:
            failed = api.send("GET", api.app_path("/channels"), connection=connection)
            succeeded = api.signed(
                "GET", api.app_path("/channels"), connection=connection
            )
            return failed, succeeded
        finally:
            connection.close()

    failed, succeeded = await asyncio.to_thread(error_then_success)
    assert failed.status == 401
    assert succeeded.status == 200


async def test_signature_uses_decoded_query_values(api: ApiClient) -> None:
    """A query value sent percent-escaped is checked in its decoded form."""
    path = api.app_path("/channels")
    params = api.signed_params("GET", path, query={"filter_by_prefix": "with space"})
    response = await asyncio.to_thread(api.send, "GET", path, params)
    assert response.status == 200
    assert response.json() == {"channels": {}}


async def test_order_disabled_before_json_403(shared_server: RunningServer) -> None:
    """A signed malformed body for a disabled app gives 403, not 400."""
    disabled = shared_server.api(DISABLED_APP)
    path = disabled.app_path("/events")
    response = await asyncio.to_thread(disabled.signed, "POST", path, b"{broken")
    assert_error_body(response, 403)


async def test_order_signature_before_json_401(api: ApiClient) -> None:
    """An unsigned malformed body gives 401, not 400."""
    path = api.app_path("/events")
    response = await asyncio.to_thread(api.send, "POST", path, None, b"{broken")
    assert_error_body(response, 401)


async def test_order_method_before_signature_405(api: ApiClient) -> None:
    """An unsigned request with the wrong method on a known route gives 405."""
    response = await asyncio.to_thread(api.send, "GET", api.app_path("/events"))
    assert_error_body(response, 405)
