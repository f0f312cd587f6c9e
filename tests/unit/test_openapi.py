"""The OpenAPI document is generated, valid, and says what the declarations say (issue 34).

``workers.http.openapi.document`` is pure: these tests feed it domains and route tables and
read the dict, validated with openapi-spec-validator for every auth mode and domain set.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
import pytest
from openapi_spec_validator import validate

from snapshot_rules.domain import NEW, Domain, Domains, Mode, event
from snapshot_rules.personal import personal
from snapshot_rules.schema import Choice, ListOf, Number, Text, fields, optional
from workers.examples.domains import all_domains, default_domains
from workers.http.openapi import NOT_HTTP, OPERATIONS, UNPLACED, document
from workers.http.openapi_schemas import INT64, type_listing
from workers.runtime.answers import ERROR_CODES

ROUTES_OF_A_READER = ["/healthz", "/readyz", "/v1/{aggregate_type}/{aggregate_id}/state"]


def ticket() -> Domain:
    """A domain with every kind of field, a personal one, and checked transitions."""
    return Domain(
        name="ticket",
        events={
            "TicketOpened": event(
                fields(
                    closed=True,
                    title=Text(max_length=80),
                    email=Text(),
                    seats=Number(integer=True, positive=True),
                    price=Number(minimum=0, maximum=1000),
                    tier=Choice(("basic", "gold")),
                    tags=ListOf(Text(max_length=8), min_items=1, max_items=3),
                    note=optional(Text()),
                ),
                after=[NEW],
            ),
            "TicketClosed": event(after=["TicketOpened"]),
        },
        reducer=lambda state, e: state,
        personal=personal("email"),
    )


def doc(domains: Domains | None = None, routes: list[str] | None = None, auth: str = "jwt") -> Any:
    found = document(domains or Domains([ticket()]), routes, auth=auth, version="1.2.3")
    validate(found)
    return found


@pytest.mark.parametrize("auth", ["jwt", "proxy", "none"])
@pytest.mark.parametrize("domains", [default_domains, all_domains])
def test_the_document_is_valid_openapi_3_1_for_every_auth_mode(auth: str, domains: Any) -> None:
    found = doc(domains(), auth=auth)
    assert found["openapi"] == "3.1.0" and found["info"]["version"] == "1.2.3"


def test_each_event_types_data_schema_is_its_declaration_with_personal_fields_marked() -> None:
    schema = doc()["components"]["schemas"]["ticket.TicketOpened"]
    props = schema["properties"]
    assert schema["additionalProperties"] is False  # closed=True
    assert schema["required"] == ["title", "email", "seats", "price", "tier", "tags"]
    assert props["title"] == {"type": "string", "minLength": 1, "maxLength": 80}
    assert props["email"]["x-personal"] is True and "x-personal" not in props["title"]
    assert props["seats"] == {"type": "integer", "exclusiveMinimum": 0, "maximum": INT64[1]}
    assert props["price"] == {"type": "number", "minimum": 0, "maximum": 1000}
    assert props["tier"] == {"type": "string", "enum": ["basic", "gold"]}
    assert props["tags"]["minItems"] == 1 and props["tags"]["maxItems"] == 3
    assert "note" in props and "note" not in schema["required"]


def test_a_data_schema_accepts_what_the_declaration_accepts_and_refuses_what_it_refuses() -> None:
    domain = ticket()
    schema = doc()["components"]["schemas"]["ticket.TicketOpened"]
    good = {"title": "t", "email": "a@b", "seats": 2, "price": 9.5, "tier": "gold", "tags": ["x"]}
    bad = [
        {**good, "seats": 0},
        {**good, "seats": 1.5},
        {**good, "tier": "silver"},
        {**good, "tags": []},
        {**good, "title": ""},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "email"},
    ]
    domain.check_data("TicketOpened", good)
    jsonschema.validate(good, schema)
    for data in bad:
        with pytest.raises(Exception, match="data"):
            domain.check_data("TicketOpened", data)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, schema)


def test_the_append_body_names_each_event_type_and_links_to_state_events_and_outcome() -> None:
    append = doc()["paths"]["/v1/ticket/{aggregate_id}/events"]["post"]
    body = append["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["mapping"].keys() == {"TicketOpened", "TicketClosed"}
    links = append["responses"]["202"]["links"]
    assert set(links) == {"state", "events", "outcome"}
    assert links["outcome"]["parameters"]["event_id"] == "$response.body#/event_id"


def test_the_append_across_aggregates_takes_items_of_the_sync_domains_only() -> None:
    """Each item schema is one sync event type's (its data the declaration's); an item of an
    async domain matches none, as the fleet refuses it (async_domain)."""
    found = doc(all_domains())
    operation = found["paths"]["/v1/appends"]["post"]
    assert operation["operationId"] == "append_many" and "one produce" in operation["description"]
    assert {"async_domain", "command_reused", "transactions_unsupported", "conflict"} <= {
        code for status in operation["responses"].values()
        for code in status["description"].split(", ")
    }  # fmt: skip
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StoredAll"
    }
    schemas = found["components"]["schemas"]
    body = schemas["MultiAppend"]
    assert body["required"] == ["appends"] and body["properties"]["appends"]["minItems"] == 1
    items = {
        ref["$ref"].rsplit("/", 1)[-1] for ref in body["properties"]["appends"]["items"]["oneOf"]
    }
    sync = {f"{d.name}.{t}.item" for d in all_domains() if d.mode is Mode.SYNC for t in d.events}
    assert items == sync and "account.MoneyDeposited.item" in items
    resolved = {**schemas["account.MoneyDeposited.item"],
                "properties": {**schemas["account.MoneyDeposited.item"]["properties"],
                               "data": schemas["account.MoneyDeposited"]}}  # fmt: skip
    good = {"aggregate_type": "account", "aggregate_id": "a1", "type": "MoneyDeposited",
            "data": {"amount": 5}, "expected_version": 3}  # fmt: skip
    jsonschema.validate(good, resolved)
    for bad in ({**good, "aggregate_type": "order"}, {**good, "data": {"amount": -1}},
                {**good, "expected_version": -1}, {**good, "actor": "x"}):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, resolved)


def profile() -> Domain:
    """A storage domain: its documents change only through EventSourcedStorage."""
    return Domain(
        name="profile", events={"ProfileChanged": event()}, reducer=lambda state, e: state,
        mode=Mode.STORAGE,
    )  # fmt: skip


def test_every_error_code_of_the_catalogue_is_in_the_document_with_its_status() -> None:
    found = doc(Domains([*all_domains(), profile()]))
    listed = {e["code"]: e["status"] for e in found["x-error-codes"]}
    assert listed == {e.code: e.status for e in ERROR_CODES}
    for entry in ERROR_CODES:
        schema = found["components"]["schemas"][f"Error_{entry.code}"]
        assert schema["properties"]["error"] == {"const": entry.code}
        assert schema["x-status"] == entry.status
    answered = {
        ref.rsplit("Error_", 1)[-1]
        for item in found["paths"].values()
        for op in item.values()
        for response in op["responses"].values()
        for ref in _refs(response.get("content", {}).get("application/json", {}).get("schema", {}))
    }
    assert answered | NOT_HTTP == listed.keys()


def _refs(schema: dict[str, Any]) -> list[str]:
    """The error schemas an answer may carry (a 503 of /healthz carries Health, no error)."""
    return [r["$ref"] for r in schema.get("oneOf", [schema]) if "Error_" in r.get("$ref", "")]


def test_each_error_status_lists_only_codes_of_that_status() -> None:
    statuses = {e.code: e.status for e in ERROR_CODES}
    for item in doc(all_domains())["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is None or int(status) < 400:
                    continue
                for ref in _refs(schema):
                    assert statuses[ref.rsplit("Error_", 1)[-1]] == int(status), (status, ref)


def test_a_code_added_to_the_catalogue_flows_into_every_operation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every code of today's catalogue is placed on its operations; one added since is listed on
    # every operation until it is placed, as this test shows.
    assert UNPLACED == ()
    monkeypatch.setattr("workers.http.openapi.UNPLACED", ("payload_too_large",))
    found = doc(routes=["/v1/types"])
    responses = found["paths"]["/v1/types"]["get"]["responses"]
    assert _refs(responses["413"]["content"]["application/json"]["schema"]) == [
        "#/components/schemas/Error_payload_too_large"
    ]


def test_only_registered_routes_are_documented() -> None:
    found = doc(routes=ROUTES_OF_A_READER)
    assert sorted(found["paths"]) == ["/healthz", "/readyz", "/v1/ticket/{aggregate_id}/state"]
    everything = doc(routes=None)
    assert "/v1/ticket/{aggregate_id}/events" in everything["paths"]
    assert all(op.template in {o.template for o in OPERATIONS} for op in OPERATIONS)


def test_the_security_scheme_follows_the_auth_mode() -> None:
    jwt = doc(auth="jwt")
    assert jwt["components"]["securitySchemes"]["bearer"]["bearerFormat"] == "JWT"
    assert jwt["security"] == [{"bearer": []}]
    assert jwt["paths"]["/healthz"]["get"]["security"] == []  # open to anyone
    assert "401" in jwt["paths"]["/v1/ticket/{aggregate_id}/state"]["get"]["responses"]
    proxy = doc(auth="proxy")
    assert proxy["components"]["securitySchemes"]["proxy"]["name"] == "X-Forwarded-User"
    none = doc(auth="none")
    assert "security" not in none and "securitySchemes" not in none["components"]
    assert "401" not in none["paths"]["/v1/ticket/{aggregate_id}/state"]["get"]["responses"]


def test_the_append_of_each_mode_answers_its_own_status() -> None:
    found = doc(Domains([*all_domains(), profile()]))
    assert "202" in found["paths"]["/v1/order/{aggregate_id}/events"]["post"]["responses"]
    sync = found["paths"]["/v1/account/{aggregate_id}/events"]["post"]["responses"]
    assert "201" in sync and "202" not in sync and "conflict" in sync["409"]["description"]
    storage = found["paths"]["/v1/profile/{aggregate_id}/events"]["post"]["responses"]
    assert "read_only" in storage["405"]["description"] and not {"201", "202"} & storage.keys()


def test_a_domains_declared_query_routes_are_documented() -> None:
    found = doc(default_domains())
    query = found["paths"]["/v1/rooms/{room_id}/messages"]["get"]
    assert [p["name"] for p in query["parameters"] if p["in"] == "path"] == ["room_id"]
    assert query["tags"] == ["chat_room"]


def test_the_type_listing_has_event_types_transitions_and_schemas() -> None:
    listing = type_listing(ticket())
    assert listing["aggregate_type"] == "ticket" and listing["mode"] == "async"
    opened = listing["event_types"]["TicketOpened"]
    assert opened["allowed_after"] == {"checked": True, "after": ["none"], "opens_aggregate": True}
    closed = listing["event_types"]["TicketClosed"]["allowed_after"]
    assert closed == {"checked": True, "after": ["TicketOpened"], "opens_aggregate": False}
    assert listing["personal"] == {"fields": ["email"], "subject": None}


def test_the_cli_writes_the_document_of_the_auth_mode_asked(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.cli.entry import main

    target = tmp_path / "api.json"
    monkeypatch.setenv("EVENTFLEET_DOMAINS", "workers.examples.domains:default_domains")
    assert main(["openapi", "--auth", "proxy", "--output", str(target)]) == 0
    written = orjson.loads(target.read_bytes())
    validate(written)
    assert set(written["components"]["securitySchemes"]) == {"proxy"}
    version = written["info"]["version"]
    assert written == document(default_domains(), auth="proxy", version=version, processes=False)
    assert not any(path.startswith("/v1/processes") for path in written["paths"])
    assert "wrote" in capsys.readouterr().err
    monkeypatch.setenv("EVENTFLEET_PROCESSES", "workers.examples.domains:default_processes")
    assert main(["openapi", "--output", str(target)]) == 0
    managed = orjson.loads(target.read_bytes())
    assert managed == document(default_domains(), auth="jwt", version=version)
    assert "/v1/processes/{process}/instances/{key}/retry" in managed["paths"]
    with pytest.raises(SystemExit) as usage:  # argparse: a mode that does not exist
        main(["openapi", "--auth", "basic"])
    assert usage.value.code == 2 and "invalid choice: 'basic'" in capsys.readouterr().err


def arrays_without_items(node: Any, where: str = "#") -> list[str]:
    """Every schema of type array that does not say what its items are."""
    found = []
    if isinstance(node, dict):
        kind = node.get("type")
        if (kind == "array" or (isinstance(kind, list) and "array" in kind)) and (
            "items" not in node and "prefixItems" not in node
        ):
            found.append(where)
        for key, value in node.items():
            found += arrays_without_items(value, f"{where}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            found += arrays_without_items(value, f"{where}/{n}")
    return found


@pytest.mark.parametrize("auth", ["jwt", "none"])
def test_every_array_says_what_its_items_are(auth: str) -> None:
    """A generator (openapi-python-client) drops an operation whose schema has an array without
    ``items``: /healthz was dropped for its ``roles``."""
    assert arrays_without_items(doc(all_domains(), auth=auth)) == []
