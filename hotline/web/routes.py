"""Every route, named, in one table."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hotline.web import sms, views

STATIC_DIR = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", views.home, name="home")
    app.router.add_get("/submit", views.submit_form, name="submit")
    app.router.add_post("/submit", views.submit, name="submit-post")
    app.router.add_get("/track/{code}", views.track, name="track")
    app.router.add_post("/sms/twilio", sms.inbound, name="sms-twilio")
    app.router.add_post("/sms/twilio/status", sms.status_callback, name="sms-twilio-status")
    app.router.add_get("/healthz", views.healthz, name="healthz")
    app.router.add_get("/readyz", views.readyz, name="readyz")
    app.router.add_static("/static", STATIC_DIR, name="static", append_version=True)
