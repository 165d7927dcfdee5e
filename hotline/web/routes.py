"""Every route, named, in one table."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hotline.web import (
    api,
    console,
    console_admin,
    directory,
    duty,
    kiosk,
    open311,
    receptions,
    reports,
    sms,
    views,
)

STATIC_DIR = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", views.home, name="home")
    app.router.add_get("/submit", views.submit_form, name="submit")
    app.router.add_post("/submit", views.submit, name="submit-post")
    app.router.add_get("/track", views.track_find, name="track-find")
    app.router.add_get("/track/{code}", views.track, name="track")
    app.router.add_post("/track/{code}/rate", views.rate, name="track-rate")
    app.router.add_get("/console", console.home, name="console")
    app.router.add_get("/console/login", console.login_form, name="console-login")
    app.router.add_post("/console/login", console.login, name="console-login-post")
    app.router.add_post("/console/logout", console.logout, name="console-logout")
    app.router.add_get("/console/password", console.password_form, name="console-password")
    app.router.add_post("/console/password", console.change_password)
    app.router.add_get("/console/cases", console.cases, name="console-cases")
    app.router.add_get("/console/cases/{code}", console.case_page, name="console-case")
    app.router.add_post("/console/cases/{code}/act", console.act, name="console-act")
    app.router.add_get("/console/events", console.events, name="console-events")
    app.router.add_get("/console/duty", duty.calendar, name="console-duty")
    app.router.add_post("/console/duty", duty.change)
    app.router.add_get("/duty.ics", duty.ics, name="duty-ics")
    app.router.add_get("/kiosk", kiosk.kiosk, name="kiosk")
    app.router.add_post("/kiosk", kiosk.submit, name="kiosk-post")
    app.router.add_get("/kiosk/slip/{code}", kiosk.slip, name="kiosk-slip")
    app.router.add_get("/console/kiosks", console_admin.kiosks, name="console-kiosks")
    app.router.add_post("/console/kiosks", console_admin.kiosk_change)
    app.router.add_get("/console/posters", console_admin.posters, name="console-posters")
    app.router.add_post("/console/posters", console_admin.poster_add)
    app.router.add_get("/console/posters/{tag}", console_admin.poster, name="console-poster")
    app.router.add_get("/console/reports", reports.reports_page, name="console-reports")
    app.router.add_get("/console/reports.csv", reports.export_csv, name="console-reports-csv")
    app.router.add_get("/console/reports.xlsx", reports.export_xlsx, name="console-reports-xlsx")
    app.router.add_get("/console/reports/monthly", reports.monthly, name="console-reports-monthly")
    app.router.add_get("/stats", reports.stats, name="stats")
    app.router.add_get("/receptions", receptions.public_list, name="receptions")
    app.router.add_get("/receptions/{id:[0-9]+}.ics", receptions.ics, name="reception-ics")
    app.router.add_get("/receptions/{id:[0-9]+}", receptions.public_page, name="reception")
    app.router.add_post("/receptions/{id:[0-9]+}", receptions.sign_up)
    app.router.add_get("/console/receptions", receptions.console_list, name="console-receptions")
    app.router.add_post("/console/receptions", receptions.schedule)
    event = "/console/receptions/{id:[0-9]+}"
    app.router.add_get(event, receptions.console_page, name="console-reception")
    app.router.add_post(event, receptions.change)
    app.router.add_get(event + "/entry", receptions.entry_form, name="console-reception-entry")
    app.router.add_post(event + "/entry", receptions.enter)
    app.router.add_post("/api/v1/cases", api.create_case, name="api-cases-create")
    app.router.add_get("/api/v1/cases", api.list_cases_route, name="api-cases")
    app.router.add_get("/api/v1/cases/{code}", api.one_case, name="api-case")
    app.router.add_post("/api/v1/cases/{code}/actions", api.act, name="api-case-act")
    app.router.add_get("/api/v1/duty", api.duty, name="api-duty")
    app.router.add_get("/api/v1/reports", api.reports, name="api-reports")
    app.router.add_get("/api/v1/openapi.json", api.openapi, name="api-openapi")
    open311.add_routes(app)
    app.router.add_get("/console/tokens", console_admin.tokens, name="console-tokens")
    app.router.add_post("/console/tokens", console_admin.token_change)
    app.router.add_get("/console/webhooks", console_admin.webhooks, name="console-webhooks")
    app.router.add_post("/console/webhooks", console_admin.webhook_change)
    app.router.add_get("/console/replies", console.replies, name="console-replies")
    app.router.add_post("/console/replies", console.save_reply)
    directory.setup(app)
    app.router.add_post("/sms/twilio", sms.inbound, name="sms-twilio")
    app.router.add_post("/sms/twilio/status", sms.status_callback, name="sms-twilio-status")
    app.router.add_static("/static", STATIC_DIR, name="static", append_version=True)
