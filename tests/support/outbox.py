"""Emails written straight to the outbox for tests (no rendering, no worker)."""

from __future__ import annotations


def alerts_queued(organization, count: int) -> None:
    """``count`` alerts of one tenant, queued in one statement."""
    from smtp.models import EmailKind
    from smtp.outbox import NewEmail, emails_enqueue

    emails_enqueue(
        [
            NewEmail(
                kind=EmailKind.ALERT,
                recipient=f"oncall{number}@acme.example",
                subject=f"Alert {number}",
                body="Node 3 at 91%.",
                partner=organization.partner,
                organization=organization,
            )
            for number in range(count)
        ]
    )
