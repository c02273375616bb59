"""HAR 1.2: required fields, URL from Host, base64 bodies, non-HTTP entries left out."""

from pilotfish.api.har import har
from pilotfish.model import Payload
from tests.store.entries import make


def test_har_entries_have_the_required_fields() -> None:
    e = make(1, path="/a?x=1&y=2")
    e.request = Payload(size=10, headers={"host": "shop.example"}, body="hi", body_size=2)
    e.response = Payload(
        size=20, headers={"content-type": "image/png"}, body="AAEC", body_size=3, encoding="base64"
    )
    doc = har([e, make(2, protocol="dns")])
    (h,) = doc["log"]["entries"]
    assert h["request"]["url"] == "http://shop.example/a?x=1&y=2"
    assert h["request"]["queryString"] == [{"name": "x", "value": "1"}, {"name": "y", "value": "2"}]
    assert h["request"]["postData"]["text"] == "hi"
    assert h["response"]["content"] == {
        "size": 3,
        "mimeType": "image/png",
        "text": "AAEC",
        "encoding": "base64",
    }
    assert h["time"] == 1.0 and h["timings"]["wait"] == 1.0
