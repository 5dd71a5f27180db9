"""Verifies a DSSE envelope with securesystemslib, independently of sunset's own code.

Usage: dsse_verify.py ENVELOPE.json PUBLIC_KEY.pem
Exit 0 when one signature verifies under the key, 1 otherwise.
"""
import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main() -> int:
    envelope_path, pem_path = sys.argv[1], sys.argv[2]
    with open(pem_path, "rb") as f:
        public_key = load_pem_public_key(f.read())
    key = SSlibKey.from_crypto(public_key)
    with open(envelope_path, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    # The key id is a hint: match it to ours, as a verifier configured with our key would.
    for signature in envelope.signatures.values():
        signature.keyid = key.keyid
    envelope.signatures = {key.keyid: s for s in envelope.signatures.values()}
    verified = envelope.verify([key], 1)
    if key.keyid not in verified:
        print("not verified")
        return 1
    document = json.loads(envelope.payload)
    print("verified:", envelope.payload_type, document.get("predicateType") or document.get("_type"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
