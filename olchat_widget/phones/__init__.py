"""Phone numbers: normalisation, region/operator/time zone description, client clock (F2–F4, F7, B2).

Independent of Flask except `cli` and `numbering.plan_for_app`.
"""
from .clock import ClientTime, Thresholds, client_time
from .describe import PhoneInfo, describe
from .normalise import PhoneEntry, normalise, parse_phone_field
from .numbering import NumberingPlan, NumberingPlanError, PlanRange, plan_for_app, reset_plan
from .update import DEFAULT_REGISTRY_URL, UpdateResult, update_registry

__all__ = [
    "ClientTime",
    "DEFAULT_REGISTRY_URL",
    "NumberingPlan",
    "NumberingPlanError",
    "PhoneEntry",
    "PhoneInfo",
    "PlanRange",
    "Thresholds",
    "UpdateResult",
    "client_time",
    "describe",
    "normalise",
    "parse_phone_field",
    "plan_for_app",
    "reset_plan",
    "update_registry",
]
