"""The Twilio wire format on its own: the strict form parser and the inbound fields."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.twiml.messaging_response import MessagingResponse

from hotline.channels.fields import FieldErrors
from hotline.channels.forms import BadForm
from hotline.channels.forms import parse_urlencoded as parse_form
from hotline.channels.sms_twilio import parse_inbound, twiml

SID = "SM" + "0" * 32


def test_form_encoding_round_trip() -> None:
    # Guards the strict parser against the exact encoding Twilio uses (+ for spaces, %XX).
    encoded = urlencode({"Body": "a b+c 中文", "From": "+86 139"}).encode()
    assert dict(parse_form(encoded)) == {"Body": "a b+c 中文", "From": "+86 139"}


@pytest.mark.parametrize("raw", [b"Body=%E4%B8", b"Body=%zz", "Body=中".encode(), b"\xff=1"])
def test_broken_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(BadForm):
        parse_form(raw)


def _strict_parse_qsl(raw: bytes) -> list[tuple[str, str]] | None:
    """What the parser answered before it took yarl's: parse_qsl, strict UTF-8 (None: refused)."""
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return None
    return None if any("\x00" in k or "\x00" in v for k, v in pairs) else pairs


# Bodies as a form sends them: names and values of any bytes (broken UTF-8, NUL, U+FFFD's
# own bytes, "%", "+", "&", "="), each %-escaped or given as they are where that is ASCII.
_PIECE = st.one_of(
    st.binary(max_size=6).map(lambda b: "".join(f"%{x:02X}" for x in b)),
    st.text(alphabet="abz09+=&%25-._~", max_size=6).map(lambda t: t.replace("%", "%25")),
    st.sampled_from(["%EF%BF%BD", "%E4%B8%AD", "%C0%80", "%ED%A0%80", "&&", "="]),
)


@given(pieces=st.lists(_PIECE, max_size=8))
def test_the_parser_answers_what_strict_parse_qsl_answers(pieces: list[str]) -> None:
    """yarl's parser, with parse_qsl's strict decoding where it put a U+FFFD: the same
    pairs for every well-formed body, a refusal for every body parse_qsl refused."""
    raw = "".join(pieces).encode()
    expected = _strict_parse_qsl(raw)
    if expected is None:
        with pytest.raises(BadForm):
            parse_form(raw)
    else:
        assert list(parse_form(raw).items()) == expected


def test_a_replacement_character_sent_as_such_is_kept() -> None:
    """U+FFFD's own bytes are text like any other (yarl's stand-in for broken bytes is not)."""
    assert dict(parse_form(b"Body=%EF%BF%BD%E4%B8%AD")) == {"Body": "\ufffd中"}


def test_inbound_fields_are_parsed_and_the_number_normalized() -> None:
    params = MultiDict(
        {"MessageSid": SID, "From": "+86 139 0000 0001", "Body": " 路灯坏了 ", "NumMedia": "0"}
    )
    sms = parse_inbound(params)
    assert (sms.sid, sms.from_number, sms.body, sms.media) == (
        SID,
        "+8613900000001",
        "路灯坏了",
        (),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("MessageSid", "SMshort"), ("From", "not a number"), ("NumMedia", "11"), ("NumMedia", "x")],
)
def test_each_bad_field_is_named(field: str, value: str) -> None:
    params = MultiDict({"MessageSid": SID, "From": "+8613900000001", "Body": "hi", "NumMedia": "0"})
    params[field] = value
    with pytest.raises(FieldErrors) as caught:
        parse_inbound(params)
    assert field in caught.value.english()


def test_twiml_with_and_without_a_message() -> None:
    assert "<Message>好</Message>" in twiml("好")
    assert "<Message>" not in twiml(None)


@given(st.one_of(st.none(), st.text(st.characters(exclude_categories=["Cs"]))))
def test_twiml_is_what_twilios_builder_writes(message: str | None) -> None:
    """The reply is written from a template (the element tree cost a tenth of each text):
    byte for byte what twilio's MessagingResponse writes, markup characters escaped."""
    response = MessagingResponse()
    if message:
        response.message(message)
    assert twiml(message) == str(response)


def test_a_sender_from_a_number_range_newer_than_the_metadata_is_accepted() -> None:
    # +86 199 was opened after some metadata releases; any possible mobile length is taken.
    params = MultiDict({"MessageSid": SID, "From": "+8619912345678", "Body": "hi", "NumMedia": "0"})
    assert parse_inbound(params).from_number == "+8619912345678"
    params["From"] = "+86123"  # not even a possible length
    with pytest.raises(FieldErrors):
        parse_inbound(params)
