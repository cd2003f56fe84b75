"""Checking frames against the served AsyncAPI document.

The document's message schemas are JSON Schema 2020-12 (pydantic's output); a frame is checked
against the schema of the message its ``type`` and direction name, with formats (uuid,
date-time) checked too. ``asyncapi-3.0.0.schema.json`` beside this file is the AsyncAPI
Initiative's JSON Schema of AsyncAPI 3.0.0 (``@asyncapi/specs`` 6.11.1, Apache-2.0, the
``without-$id`` variant, minified), which the document itself is checked against.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_SPEC_SCHEMA = Path(__file__).with_name("asyncapi-3.0.0.schema.json")
_DOCUMENT_URI = "urn:timingle:asyncapi"


@cache
def asyncapi_spec_validator() -> Draft7Validator:
    """A validator of AsyncAPI 3.0.0 documents (the specification's own schema is draft-07)."""
    return Draft7Validator(json.loads(_SPEC_SCHEMA.read_text()))


class FrameContract:
    """The message schemas of one AsyncAPI document, by direction and frame type."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_DOCUMENT_URI, resource)
        self.messages: dict[str, dict[str, Any]] = document["components"]["messages"]

    def types(self, direction: str) -> set[str]:
        """The frame types of ``client`` or ``server`` messages."""
        prefix = f"{direction}_"
        return {m["name"] for key, m in self.messages.items() if key.startswith(prefix)}

    def errors(self, direction: str, frame: dict[str, Any]) -> list[str]:
        """Why ``frame`` breaks its message's schema (empty when it conforms, or names an
        unknown type)."""
        key = f"{direction}_{frame.get('type')}"
        if key not in self.messages:
            return [f"no {direction} message of type {frame.get('type')!r} in the document"]
        ref = self.messages[key]["payload"]["$ref"]
        validator = Draft202012Validator(
            {"$ref": _DOCUMENT_URI + ref},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(frame)
        ]

    def reply_types(self, request_type: str) -> set[str]:
        """The frame types the document lists as answers to a client frame."""
        operation = self.document["operations"][f"receive_{request_type}"]
        refs = operation.get("reply", {}).get("messages", [])
        channel_messages = self.document["channels"]["chat"]["messages"]
        names = set()
        for ref in refs:
            key = ref["$ref"].rsplit("/", 1)[-1]
            target = channel_messages[key]["$ref"].rsplit("/", 1)[-1]
            names.add(self.messages[target]["name"])
        return names
