#!/usr/bin/env python3
"""Independent verifier of an Agora audit export, Python 3 standard library only.

    python3 scripts/verify_chain.py export.ndjson      (or - for stdin)

Checks every stream's hash chain as docs/AUDIT.md specifies and prints
{"ok", "streams_checked", "events_checked", "failures": [{"stream_id", "version", "reason"}]}.
Exit status: 0 when every event chains correctly, 1 when not.
"""
import hashlib
import json
import sys
from decimal import Decimal

HASHED_FIELDS = ("event_id", "stream_type", "stream_id", "version", "event_type",
                 "schema_version", "occurred_at", "payload", "metadata")
ENVELOPE_FIELDS = {"position", "prev_hash", "hash", *HASHED_FIELDS}
GENESIS = bytes(32)
ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f",
           "\n": "\\n", "\r": "\\r", "\t": "\\t"}  # other controls: \u00xx


def jcs(value):
    """RFC 8785 canonical JSON text of a parsed JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):  # JSON numbers are IEEE 754 doubles in JCS
        return jcs_number(float(value))
    if isinstance(value, str):
        escaped = (ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in value)
        return '"' + "".join(escaped) + '"'
    if isinstance(value, list):
        return "[" + ",".join(jcs(item) for item in value) + "]"
    if isinstance(value, dict):  # keys sorted by UTF-16 code units
        keys = sorted(value, key=lambda key: key.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(jcs(key) + ":" + jcs(value[key]) for key in keys) + "}"
    raise ValueError(f"not a JSON value: {value!r}")


def jcs_number(x):
    """A double as ECMAScript's Number.prototype.toString writes it (RFC 8785, 3.2.2.3)."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("NaN and Infinity are not JSON")
    if x == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    d, k = "".join(map(str, digits)), len(digits)
    n = k + exponent  # the value is 0.d * 10^n
    if k <= n <= 21:
        text = d + "0" * (n - k)
    elif 0 < n <= 21:
        text = d[:n] + "." + d[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + d
    else:
        text = (d[0] + ("." + d[1:] if k > 1 else "")) + f"e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return ("-" if x < 0 else "") + text


def check(event, streams):
    """Why `event` does not chain onto its stream, or None; advances the stream."""
    last_version, last_hash = streams.get(event["stream_id"], (0, GENESIS.hex()))
    streams[event["stream_id"]] = (event["version"], event["hash"])
    if event["version"] != last_version + 1:
        return f"expected version {last_version + 1}, found {event['version']}"
    if event["prev_hash"] != last_hash:
        return (f"prev_hash {event['prev_hash']} does not match "
                f"the previous event's hash {last_hash}")
    document = jcs({field: event[field] for field in HASHED_FIELDS}).encode("utf-8")
    recomputed = hashlib.sha256(bytes.fromhex(event["prev_hash"]) + document).hexdigest()
    if event["hash"] != recomputed:
        return f"stored hash {event['hash']} does not match the recomputed {recomputed}"
    return None


def verify(lines):
    streams, failed, failures, events = {}, set(), [], 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        events += 1
        stream_id = version = None
        try:
            event = json.loads(raw.decode("utf-8"))
            stream_id = event.get("stream_id") if isinstance(event.get("stream_id"), str) else None
            version = event.get("version") if isinstance(event.get("version"), int) else None
            missing = ENVELOPE_FIELDS - set(event)
            if missing:
                raise ValueError("missing " + ", ".join(sorted(missing)))
            reason = check(event, streams)
        except (ValueError, TypeError, AttributeError, OverflowError) as error:
            reason = f"not an event envelope: {error}"
        if reason and (stream_id is None or stream_id not in failed):
            failed.add(stream_id)
            failures.append({"stream_id": stream_id, "version": version,
                             "reason": f"line {number}: {reason}"})
    return {"ok": not failures, "streams_checked": len(streams), "events_checked": events,
            "failures": failures}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        with (sys.stdin.buffer if sys.argv[1] == "-" else open(sys.argv[1], "rb")) as lines:
            report = verify(lines)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    sys.exit(0 if report["ok"] else 1)
