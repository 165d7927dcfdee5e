"""The baseline `hotline bench` compares intake with: a bare aiohttp app that parses the same
form and answers a small body, the least any intake endpoint must do. Run as
`python -m hotline.bench.baseline PORT`."""

from __future__ import annotations

import sys

from aiohttp import web

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>ok</Message></Response>'


async def sms(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text=TWIML, content_type="application/xml")


async def submit(request: web.Request) -> web.Response:
    form = await request.post()
    return web.json_response({"code": "ABCDEFG", "fields": len(form)}, status=201)


async def form_page(request: web.Request) -> web.Response:
    hidden = '<input type="hidden" name="csrf_token" value="baseline">'
    return web.Response(text=f"<form>{hidden}</form>", content_type="text/html")


def main() -> None:
    app = web.Application()
    app.router.add_post("/sms/twilio", sms)
    app.router.add_post("/submit", submit)
    app.router.add_get("/submit", form_page)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
