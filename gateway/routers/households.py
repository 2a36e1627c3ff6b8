"""Placeholder: filled in by the issue-3 work."""

from fastapi import APIRouter

router = APIRouter(tags=["households"])
