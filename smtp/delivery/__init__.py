"""Delivery: the only code that speaks SMTP (see ``session``)."""

from smtp.delivery.message import build_message
from smtp.delivery.session import (
    POLICY_MESSAGE,
    SmtpConnection,
    deliver,
    ehlo_name,
    system_resolver,
)
from smtp.delivery.steps import Outcome, Step, StepFailed

__all__ = [
    "POLICY_MESSAGE",
    "Outcome",
    "SmtpConnection",
    "Step",
    "StepFailed",
    "build_message",
    "deliver",
    "ehlo_name",
    "system_resolver",
]
