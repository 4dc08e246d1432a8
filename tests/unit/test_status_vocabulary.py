"""The Status vocabulary the server renders and the client reads is one table:
every server error class, rendered, comes back as the client class of the same
meaning, with the same code, reason, message and details."""

from __future__ import annotations

import orjson
import pytest

from apimachinery import status
from apiserver import errors as server
from client import errors as client


def test_a_bare_code_gets_the_general_reason():
    assert status.reason_for(409) == "Conflict"
    assert status.reason_for(410) == "Expired"
    assert status.reason_for(503) == "ServiceUnavailable"
    assert status.reason_for(418) == "Unknown"


def test_failure_body_keeps_the_server_key_order_and_omits_empty_details():
    body = status.failure(404, "NotFound", 'pods "x" not found')
    assert orjson.dumps(body) == (b'{"kind":"Status","apiVersion":"v1","metadata":{},'
                                  b'"status":"Failure","message":"pods \\"x\\" not found",'
                                  b'"reason":"NotFound","code":404}')


def test_messages_name_a_grouped_resource_with_its_group():
    assert status.object_message("NotFound", "leases", "l", "coordination.k8s.io") == \
        'leases.coordination.k8s.io "l" not found'
    assert status.object_message("AlreadyExists", "services", "web") == 'services "web" already exists'
    assert status.object_details("services", "web") == {"name": "web", "kind": "services"}


@pytest.mark.parametrize("raised, expected", [
    (server.NotFound.of("services", "web"), client.NotFound),
    (server.AlreadyExists.of("pods", "p"), client.AlreadyExists),
    (server.Conflict.modified("leases", "l", "coordination.k8s.io"), client.Conflict),
    (server.Gone("too old resource version: 1 (5)"), client.Expired),
    (server.BadRequest("bad selector"), client.BadRequest),
    (server.Forbidden("namespace is terminating"), client.Forbidden),
    (server.Invalid("Service", "web", [server.required("spec.ports")]), client.Invalid),
    (server.InternalError("boom"), client.ServerError),
    (server.Timeout("too large resource version"), client.ServerError),
])
def test_what_the_server_renders_the_client_reads_back(raised, expected):
    got = client.error_from_response(raised.code, orjson.dumps(raised.status()))
    assert type(got) is expected
    assert (got.code, got.reason, got.message) == (raised.code, raised.reason, raised.message)
    assert got.details == raised.details
