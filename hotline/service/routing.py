"""Who a new case goes to: pure decisions over the config and the duty schedule."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.service.cases import Intake
from hotline.service.config import PointConfig
from hotline.service.duty import Rotation


@dataclass(frozen=True)
class Assignment:
    member_id: str
    reason: str  # "on-duty"


class RoutingPolicy:
    """Routing policy for one config. Built once per config load; cheap to call."""

    def __init__(self, config: PointConfig) -> None:
        self.config = config
        self.rotation = Rotation(config.duty, config.point.timezone)

    def assign(self, intake: Intake) -> Assignment:
        """The member on duty at the moment the request was received."""
        return Assignment(self.rotation.on_duty(intake.received_at), "on-duty")
