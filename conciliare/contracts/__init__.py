"""Versioned contracts between services: RPC payloads and integration events.

Producer and consumer import the same pydantic models from here, so a payload that
one side writes is validated by the same rules on the other.
"""
