#!/usr/bin/env python3
"""Independent verifier of an Agora audit export, Python 3 standard library only.

    python3 scripts/verify_chain.py export.ndjson      (or - for stdin)
        [--checkpoint KEPT.json --public-key KEY]
        [--latest LATEST.json --consistency-proof PROOF.json]

Checks every stream's hash chain and the verifiable log (dense sequence, RFC 9162 Merkle
tree over every event as exported) as docs/AUDIT.md specifies, and prints
{"ok", "streams_checked", "events_checked", "failures": [{"stream_id", "version", "reason"}],
 "tree_size", "root_hash"}.
--checkpoint: a checkpoint kept earlier (GET /v1/audit/checkpoint); its Ed25519 signature
must verify with --public-key (base64 of the 32-byte key, or a file holding it or the JSON of
GET /v1/audit/public-key) and its root must be the root of the export's first tree_size
events. --latest and --consistency-proof (GET /v1/audit/proofs/consistency?from=<kept>&to=
<latest>): the later checkpoint's signature, and the RFC 9162 proof that it extends the kept
one. Exit status: 0 when everything holds, 1 when not, 2 when the check cannot run.
"""
import argparse
import base64
import hashlib
import json
import os
import sys
from decimal import Decimal

HASHED_FIELDS = ("event_id", "stream_type", "stream_id", "version", "event_type",
                 "schema_version", "occurred_at", "payload", "metadata")
ENVELOPE_FIELDS = {"position", "prev_hash", "hash", *HASHED_FIELDS}
METADATA_FIELDS = {"actor", "correlation_id", "causation_id", "command_id"}
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
    metadata = event["metadata"]
    if not isinstance(metadata, dict) or set(metadata) != METADATA_FIELDS:
        stored = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (f"metadata as stored {stored} is not what the store writes (exactly actor, "
                "correlation_id, causation_id, command_id): it was altered after the append")
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


# --- The Merkle tree (RFC 9162): leaf = SHA-256(0x00 || bytes), node = SHA-256(0x01 || l || r)

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


class Tree:
    """The right edge of a growing tree: its perfect subtrees, largest first."""

    def __init__(self):
        self.size, self.nodes = 0, []

    def push(self, leaf):
        level, digest = 0, leaf
        while self.nodes and self.nodes[-1][0] == level:
            digest = node_hash(self.nodes.pop()[1], digest)
            level += 1
        self.nodes.append((level, digest))
        self.size += 1

    def root(self):
        if not self.nodes:
            return hashlib.sha256(b"").digest()
        digest = self.nodes[-1][1]
        for _, left in reversed(self.nodes[:-1]):
            digest = node_hash(left, digest)
        return digest


def verify_consistency(first, second, first_root, second_root, proof):
    """RFC 9162, 2.1.4.2: every element used, none left over."""
    if first == 0 or first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    path = ([first_root] if first & (first - 1) == 0 else []) + list(proof)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# --- Ed25519 signature verification (RFC 8032, section 5.1.7), integers only

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):  # extended homogeneous coordinates
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    p, q = (y1 - x1) * (y2 - x2) % P, (y1 + x1) * (y2 + x2) % P
    r, s = 2 * t1 * t2 * D % P, 2 * z1 * z2 % P
    e, f, g, h = q - p, s - r, s + r, q + p
    return e * f % P, g * h % P, f * g % P, e * h % P


def _mul(k, point):
    result = (0, 1, 1, 0)
    while k:
        if k & 1:
            result = _add(result, point)
        point, k = _add(point, point), k >> 1
    return result


def _x(y, sign):
    if y >= P:
        return None
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if xx == 0:
        return None if sign else 0
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * SQRT_M1 % P
    if (x * x - xx) % P:
        return None
    return P - x if x & 1 != sign else x


def _point(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    x = _x(y & ((1 << 255) - 1), y >> 255)
    return None if x is None else (x, y & ((1 << 255) - 1), 1, x * (y & ((1 << 255) - 1)) % P)


_GY = 4 * pow(5, P - 2, P) % P
BASE = (_x(_GY, 0), _GY, 1, _x(_GY, 0) * _GY % P)


def ed25519_verify(public, message, signature):
    a, r = _point(public), _point(signature[:32])
    if a is None or r is None or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    left, right = _mul(s, BASE), _add(r, _mul(h, a))
    return (left[0] * right[2] - right[0] * left[2]) % P == 0 and \
        (left[1] * right[2] - right[1] * left[2]) % P == 0


def checkpoint_problem(checkpoint, public):
    """Why `public` did not sign `checkpoint`, or None."""
    key_id = hashlib.sha256(public).hexdigest()[:16]
    if checkpoint["key_id"] != key_id:
        return f"the checkpoint names key {checkpoint['key_id']}, but the log's key is {key_id}"
    message = (f"agora-log-checkpoint/v1\n{checkpoint['key_id']}\n{checkpoint['tree_size']}\n"
               f"{checkpoint['root_hash']}\n{checkpoint['timestamp']}\n").encode("utf-8")
    try:
        signature = base64.b64decode(checkpoint["signature"], validate=True)
    except ValueError as error:
        return f"the signature is not base64: {error}"
    if not ed25519_verify(public, message, signature):
        return f"the checkpoint's signature does not verify with the log's public key {key_id}"
    return None


class TreeCheck:
    """Dense sequence, leaves recomputed from the lines, roots compared with checkpoints."""

    def __init__(self):
        self.tree, self.next, self.unsequenced, self.failures = Tree(), 1, 0, []
        self.expected = []  # (tree_size, root, what)

    def fail(self, event, reason):
        self.failures.append({"stream_id": event and event["stream_id"],
                              "version": event and event["version"], "reason": reason})

    def check(self, event, label):
        sequence = event.get("sequence")
        if sequence is None:
            self.unsequenced += 1
            return
        if self.unsequenced:
            self.fail(event, f"{label}sequence {sequence} comes after an event without a sequence")
        if sequence > self.next:
            self.fail(event, f"{label}sequence jumps from {self.next - 1} to {sequence}: "
                             f"{sequence - self.next} event(s) with sequence "
                             f"{self.next}..={sequence - 1} are missing")
            self.next = sequence + 1
        elif sequence < self.next:
            self.fail(event, f"{label}sequence {sequence} is out of order (expected {self.next})")
        else:
            self.next += 1
        leaf = {name: value for name, value in event.items() if name != "sequence"}
        self.tree.push(leaf_hash(jcs(leaf).encode("utf-8")))
        root = self.tree.root()
        for size, expected, what in self.expected:
            if size == self.tree.size and expected != root:
                self.fail(None, f"the first {size} events hash to root {root.hex()}, but {what} "
                                f"signed root {expected.hex()}: the log it covers was changed")

    def finish(self):
        size = self.tree.size
        for expected_size, _, what in self.expected:
            if expected_size > size:
                self.fail(None, f"the log has {size} sequenced events, but {what} covers "
                                f"{expected_size}: the events with sequence "
                                f"{size + 1}..={expected_size} are gone")


def verify(lines, tree=None):
    streams, failed, failures, events = {}, set(), [], 0
    tree = tree or TreeCheck()
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
            unknown = set(event) - ENVELOPE_FIELDS - {"sequence"}
            if unknown:
                raise ValueError("unknown " + ", ".join(sorted(unknown)))
            if not isinstance(event.get("sequence"), (int, type(None))):
                raise ValueError("sequence is not an integer")
            reason = check(event, streams)
            tree.check(event, f"line {number}: ")
        except (ValueError, TypeError, AttributeError, OverflowError) as error:
            reason = f"not an event envelope: {error}"
        if reason and (stream_id is None or stream_id not in failed):
            failed.add(stream_id)
            failures.append({"stream_id": stream_id, "version": version,
                             "reason": f"line {number}: {reason}"})
    tree.finish()
    failures += tree.failures
    return {"ok": not failures, "streams_checked": len(streams), "events_checked": events,
            "failures": failures, "tree_size": tree.tree.size, "root_hash": tree.tree.root().hex()}


def read_json(path):
    with open(path, "rb") as file:
        return json.load(file)


def public_key(value):
    """--public-key: base64, or a file holding base64 or the public-key JSON document."""
    text = value
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as file:
            text = file.read()
    try:
        text = json.loads(text)["public_key"]
    except (ValueError, TypeError, KeyError):
        pass
    key = base64.b64decode(text.strip(), validate=True)
    if len(key) != 32:
        raise ValueError(f"a public key is 32 bytes, not {len(key)}")
    return key


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export")
    parser.add_argument("--checkpoint")
    parser.add_argument("--public-key")
    parser.add_argument("--latest")
    parser.add_argument("--consistency-proof")
    args = parser.parse_args()
    tree, extra = TreeCheck(), []
    try:
        key = public_key(args.public_key) if args.public_key else None
        kept = read_json(args.checkpoint) if args.checkpoint else None
        latest = read_json(args.latest) if args.latest else None
        proof = read_json(args.consistency_proof) if args.consistency_proof else None
        if (kept or latest) and key is None:
            raise ValueError("--checkpoint and --latest need the log's --public-key")
        if (latest is None) != (proof is None) or (latest and not kept):
            raise ValueError("--latest and --consistency-proof go together, with --checkpoint")
        for checkpoint, what in ((kept, "the kept checkpoint"), (latest, "the latest checkpoint")):
            if checkpoint is None:
                continue
            problem = checkpoint_problem(checkpoint, key)
            if problem:
                tree.fail(None, f"{what}: {problem}")
            tree.expected.append((checkpoint["tree_size"], bytes.fromhex(checkpoint["root_hash"]),
                                  what))
        if latest:
            hashes = [bytes.fromhex(h) for h in proof["proof"]]
            if (proof["from"], proof["to"]) != (kept["tree_size"], latest["tree_size"]) or \
                    not verify_consistency(kept["tree_size"], latest["tree_size"],
                                           bytes.fromhex(kept["root_hash"]),
                                           bytes.fromhex(latest["root_hash"]), hashes):
                extra.append({"stream_id": None, "version": None, "reason":
                              f"the consistency proof from {kept['tree_size']} to "
                              f"{latest['tree_size']} events does not hold: the latest "
                              "checkpoint does not extend the kept one"})
        with (sys.stdin.buffer if args.export == "-" else open(args.export, "rb")) as lines:
            report = verify(lines, tree)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    report["failures"] += extra
    report["ok"] = not report["failures"]
    print(json.dumps(report, indent=2, ensure_ascii=False))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
