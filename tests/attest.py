"""Makes validation attestations with securesystemslib, independently of sunset's code.

Usage:
  attest.py keygen DIR                 writes DIR/validator.key and DIR/validator.pub.pem
                                       (Ed25519, PKCS#8 and SubjectPublicKeyInfo PEM)
  attest.py sign KEY STATEMENT.json    prints the statement signed as a DSSE envelope
"""
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner


def keygen(directory: str) -> None:
    key = Ed25519PrivateKey.generate()
    with open(f"{directory}/validator.key", "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
    with open(f"{directory}/validator.pub.pem", "wb") as f:
        f.write(key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        ))


def sign(key_path: str, statement_path: str) -> None:
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(statement_path, "rb") as f:
        payload = f.read()
    envelope = Envelope(payload, "application/vnd.in-toto+json", {})
    envelope.sign(CryptoSigner(key))
    print(json.dumps(envelope.to_dict()))


def main() -> int:
    if sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    elif sys.argv[1] == "sign":
        sign(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
