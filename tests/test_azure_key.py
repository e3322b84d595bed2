"""The SSH key every Azure VM gets (Azure needs one) has no private key: its modulus is re-derived
here from the public seed, so the module's constant cannot be a key someone generated and kept."""

from __future__ import annotations

import base64
import hashlib
import re
import struct

from skyplan.assets import modules_dir

SEED = b"skyplan: an RSA modulus nobody can factor, so no private key exists for this SSH key"


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _mpint(x: int) -> bytes:
    return _string(x.to_bytes((x.bit_length() + 8) // 8, "big"))


def test_azure_key_is_the_hash_derived_modulus() -> None:
    raw = b"".join(hashlib.sha512(SEED + bytes([i])).digest() for i in range(6))
    n = int.from_bytes(raw, "big") | (1 << 3071) | 1  # 3072 bits, odd: a hash, not a product of primes
    want = "ssh-rsa " + base64.b64encode(_string(b"ssh-rsa") + _mpint(65537) + _mpint(n)).decode()
    main = (modules_dir() / "azure-node" / "main.tf").read_text()
    found = re.findall(r'unusable_ssh_key = "(ssh-rsa [A-Za-z0-9+/=]+) skyplan-no-private-key"', main)
    assert found == [want]
