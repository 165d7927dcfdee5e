"""`hotline sms send`: a Twilio-shaped, signed inbound text, posted to a running service."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit
from urllib.request import Request, urlopen
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

from hotline.service.config import ConfigError, demo_config_path
from hotline.service.configfile import load_config
from hotline.service.settings import DEMO_TWILIO_AUTH_TOKEN

DETAIL_MAX = 2000  # of a refusal's body, said back


def _hotline_number() -> str:
    path = Path(os.environ.get("HOTLINE_CONFIG") or demo_config_path())
    try:
        numbers = load_config(path).point.sms_numbers
    except ConfigError:
        numbers = ()
    return numbers[0] if numbers else "+8657300000000"


def post_text(sender: str, text: str, *, to: str | None, url: str | None) -> int:
    """Sign with TWILIO_AUTH_TOKEN, or else the demo token (what `serve --demo` accepts)."""
    token = os.environ.get("TWILIO_AUTH_TOKEN")
    if not token:
        print("(signing with the demo token: TWILIO_AUTH_TOKEN is not set)", file=sys.stderr)
        token = DEMO_TWILIO_AUTH_TOKEN
    base = (url or os.environ.get("HOTLINE_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/")
    endpoint = base + "/sms/twilio"
    try:
        parsed = urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(endpoint)
    except ValueError:
        print(f"hotline sms send: {base!r} is not an http(s) address", file=sys.stderr)
        return 2
    for name, given in (("the text", text), ("--from", sender), ("--to", to or "")):
        try:
            given.encode("utf-8")
        except UnicodeEncodeError:
            print(f"hotline sms send: {name} is not UTF-8 (check the terminal's encoding)",
                  file=sys.stderr)  # fmt: skip
            return 2
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": to or _hotline_number(),
        "Body": text,
        "NumMedia": "0",
    }
    signature = RequestValidator(token).compute_signature(endpoint, params)
    request = Request(  # noqa: S310 - the URL is the operator's own service
        endpoint,
        data=urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature},
    )
    try:
        with urlopen(request, timeout=15) as response:  # noqa: S310
            body = response.read().decode()
    except HTTPError as exc:
        detail = exc.read(DETAIL_MAX).decode(errors="replace")
        if "json" not in (exc.headers.get("Content-Type") or ""):  # a page: not the webhook
            detail = f"{endpoint} is no hotline SMS webhook"
        print(f"hotline sms send: {exc.code}: {detail}", file=sys.stderr)
        return 1
    except URLError as exc:
        print(f"hotline sms send: cannot reach {endpoint}: {exc.reason}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"hotline sms send: {endpoint} did not answer within 15 s", file=sys.stderr)
        return 1
    # The reply comes from the operator's own service.
    try:
        replies = [m.text or "" for m in ElementTree.fromstring(body).iter("Message")]  # noqa: S314
    except ElementTree.ParseError:
        print(f"hotline sms send: {endpoint} answered no TwiML: is it a hotline?", file=sys.stderr)
        return 1
    print("\n".join(replies) if replies else "(no reply)")
    return 0
