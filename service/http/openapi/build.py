"""The small builders every part of the OpenAPI document is made of."""

from __future__ import annotations

from typing import Any

from service.http.routes import AUTH_PREFIX

Json = dict[str, Any]

AUTH = AUTH_PREFIX
JSON = "application/json"
# Every moment the API answers with (http/render.py rfc3339).
UTC_TIME = "RFC 3339, in UTC with `Z`."

# Error responses by component name; several 401s differ only in when and which `code`.
STATUS = {"BadRequest": "400", "InvalidCredentials": "401", "TokenRefused": "401",
          "BearerUnauthorized": "401", "MfaRefused": "401", "PasskeyRefused": "401",
          "EmailNotVerified": "403", "Forbidden": "403", "StepUpRequired": "403",
          "NotFound": "404",
          "PayloadTooLarge": "413", "UnsupportedMediaType": "415",
          "TooManyRequests": "429", "ServerError": "500", "ServiceUnavailable": "503"}


def ref(kind: str, name: str, **siblings: Any) -> Json:
    """A `$ref` to a component of this document, with optional sibling keys."""
    return {"$ref": f"#/components/{kind}/{name}", **siblings}


def string(description: str = "", **limits: Any) -> Json:
    """A string schema, with its description (when given) and limits."""
    return {"type": "string", **({"description": description} if description else {}), **limits}


def obj(properties: Json, required: list[str], description: str = "") -> Json:
    """An object schema with these properties, of which `required` must be present."""
    schema: Json = {"type": "object", "properties": properties, "required": required}
    return {**schema, "description": description} if description else schema


def content(schema: Json, media_type: str = JSON) -> Json:
    """A content map: one media type and its schema."""
    return {media_type: {"schema": schema}}


def response(description: str, schema: Json | None = None, **headers: Json) -> Json:
    """A response: a description, a JSON body when `schema` is given, headers."""
    answer: Json = {"description": description}
    if schema is not None:
        answer["content"] = content(schema)
    if headers:
        answer["headers"] = headers
    return answer


def token_response(description: str, schema_name: str) -> Json:
    """A success that carries tokens, hence never cached."""
    return response(description, ref("schemas", schema_name),
                    **{"Cache-Control": ref("headers", "CacheControl")})


def operation(op_id: str, summary: str, description: str, ok: Json, *, body: str | None = None,
              errors: tuple[str, ...] = (), bearer: bool = False, tag: str = "auth") -> Json:
    """One operation; a JSON body brings 413 and 415, every operation may answer 500."""
    op: Json = {"operationId": op_id, "tags": [tag], "summary": summary,
                "description": description}
    if body is not None:
        op["requestBody"] = {"required": True, "content": content(ref("schemas", body))}
        errors = (*errors, "PayloadTooLarge", "UnsupportedMediaType")
    if bearer:
        op["security"] = [{"bearerAuth": []}]
    failures = {STATUS[name]: ref("responses", name) for name in (*errors, "ServerError")}
    op["responses"] = dict(sorted({**ok, **failures}.items()))
    return op

