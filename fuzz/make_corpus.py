#!/usr/bin/env python3
"""Writes the seed corpus for the `decode` fuzz target into corpus/decode/.

Seeds are valid packets: the RFC 2865 §7 and RFC 5997 §6.1 examples (rfc-NN, in the
order of `vectors::all()` in src/radius/tests/vectors.rs, which checks them), and
packets built here with Python's hashlib/hmac, signed with the RFC secret `xyzzy5461`
(gen-*): VSAs, Proxy-State, EAP-Message, Tunnel-Password, MS-MPPE keys, accounting,
CoA, RFC 6929 extended attributes. Run from fuzz/: `python3 make_corpus.py`.
"""
import hashlib
import hmac
import os

SECRET = b"xyzzy5461"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "decode")

RFC = [
    # §7.1 PAP request and Accept
    "0100 0038 0f403f9473978057bd83d5cb98f4227a 01066e656d6f 02120dbe708d93d413ce3196e43f782a0aee 0406c0a80110 050600000003",
    "0200 0026 86fe220e7624ba2a1005f6bf9b55e0b2 060600000001 0f0600000000 0e06c0a80103",
    # §7.2 CHAP request and Accept
    "0101 0047 2aee86f08d0d55969ca5978e0d3367a2 0108666c6f707379 031316e97557c316185895f293ff63440772 75 0406c0a80110 050600000014 060600000002 070600000001",
    "0201 0038 15efbc7dab26cfa3dc34d9c03c8601a4 060600000002 070600000001 0806fffffffe 0a0600000002 0d0600000001 0c06000005dc",
    # §7.3 first request, Challenge, Reject
    "0102 0039 f3a47a1f6a6d76710b947ab93041a039 01076d6f707379 0212336575737782 89b570885e15084825c5 0406c0a80110 050600000007",
    "0b02 004e 36f3c8764ae8c71157403c0c71ff9c45 123043 68616c6c656e67652033323736393433302e2020456e74657220726573706f6e73652061742070726f6d70742e 180a3332373639343330",
    "0303 0014 a42f4fca45916c4e09c8340f9e746aa0",
    # RFC 5997 §6.1 Status-Server and Accept
    "0cda 0026 8a54f4686fb394c52866e302185d0623 50125a665e2e1e8411f3e243822097c84fa3",
    "02da 0014 ef0d552a4bf2d693ec2b6fe8b5411d66",
    # §7.3 second request, State length corrected to 0a
    "0103 0043 b122556d428a13d0d6253807c457ecf0 01076d6f707379 0212692c1f205fc081b919b95195f561a581 0406c0a80110 050600000007 180a3332373639343330",
]


def attr(typ, value):
    assert len(value) <= 253
    return bytes([typ, len(value) + 2]) + value


def vsa(vendor, subs):
    body = b"".join(bytes([t, len(v) + 2]) + v for t, v in subs)
    return attr(26, vendor.to_bytes(4, "big") + body)


def packet(code, ident, auth, attrs):
    body = b"".join(attrs)
    return bytes([code, ident]) + (20 + len(body)).to_bytes(2, "big") + auth + body


def fill_ma(pkt, header_auth):
    at = pkt.find(bytes([80, 18]), 20)
    if at < 0:
        return pkt
    at += 2
    zeroed = pkt[:4] + header_auth + pkt[20:at] + bytes(16) + pkt[at + 16:]
    ma = hmac.new(SECRET, zeroed, hashlib.md5).digest()
    return pkt[:at] + ma + pkt[at + 16:]


def md5_auth(pkt, header_auth):
    return pkt[:4] + hashlib.md5(pkt[:4] + header_auth + pkt[20:] + SECRET).digest() + pkt[20:]


def hide(pw, ra):
    data = pw + bytes(-len(pw) % 16 or (16 if not pw else 0))
    out, prev = b"", ra
    for i in range(0, len(data), 16):
        c = bytes(x ^ y for x, y in zip(data[i:i + 16], hashlib.md5(SECRET + prev).digest()))
        out, prev = out + c, c
    return out


def salted(plain, ra, salt):
    data = bytes([len(plain)]) + plain
    data += bytes(-len(data) % 16)
    out, prev = b"", ra + salt
    for i in range(0, len(data), 16):
        c = bytes(x ^ y for x, y in zip(data[i:i + 16], hashlib.md5(SECRET + prev).digest()))
        out, prev = out + c, c
    return salt + out


MA = attr(80, bytes(16))
RA = bytes.fromhex("6a2b9e0c55d41f8873a0c2e19b4d7f30")


def generated():
    seeds = {}
    # Access-Request as a VPN gateway sends it: MA first, VSAs, Proxy-State.
    req = packet(1, 0x31, RA, [
        MA, attr(1, b"alice@example.org"), attr(2, hide(b"correct horse", RA)),
        attr(4, bytes([127, 0, 0, 1])), attr(5, (1234).to_bytes(4, "big")),
        attr(31, b"203.0.113.5"), attr(30, b"00-11-22-33-44-55:vpn"), attr(32, b"asa-1"),
        vsa(9, [(1, b"ip:source-ip=203.0.113.5")]), vsa(12356, [(2, bytes([203, 0, 113, 5]))]),
        attr(33, b"\x01\x02proxy-state-1"), attr(33, b"ps2"),
    ])
    seeds["gen-access-request-vsa-proxy-state"] = fill_ma(req, RA)
    # EAP round: request and Challenge, both with MA.
    eap_req = packet(1, 0x32, RA, [attr(1, b"bob"), attr(79, bytes.fromhex("0201000801626f62")), MA,
                                    attr(24, b"eap-state-0123456789")])
    seeds["gen-eap-request"] = fill_ma(eap_req, RA)
    chal = packet(11, 0x32, bytes(16), [MA, attr(79, bytes.fromhex("010200061920")), attr(24, os_urandom_fixed(32))])
    seeds["gen-eap-challenge"] = md5_auth(fill_ma(chal, RA), RA)
    # Access-Accept with Tunnel-Passwords, MPPE keys, Class, Reply-Message, MA first.
    mppe = vsa(311, [(16, salted(bytes(range(32)), RA, b"\x80\x01")), (7, bytes([0, 0, 0, 1])),
                     (17, salted(bytes(range(32, 64)), RA, b"\x80\x02")), (8, bytes([0, 0, 0, 6]))])
    acc = packet(2, 0x31, bytes(16), [
        MA, attr(6, (2).to_bytes(4, "big")), attr(64, bytes([1, 0, 0, 3])), attr(65, bytes([1, 0, 0, 1])),
        attr(69, b"\x01" + salted(b"tunnel secret", RA, b"\x81\x11")),
        attr(69, b"\x02" + salted(b"x" * 100, RA, b"\x81\x12")), mppe,
        attr(25, b"class-from-nps"), attr(18, b"Welcome"), attr(81, b"\x01vlan42"),
        attr(33, b"\x01\x02proxy-state-1"),
    ])
    seeds["gen-accept-tunnel-mppe"] = md5_auth(fill_ma(acc, RA), RA)
    # Reject with a long split Reply-Message and no MA.
    rej = packet(3, 0x33, bytes(16), [attr(18, b"R" * 253), attr(18, b"eply")])
    seeds["gen-reject-split-reply"] = md5_auth(rej, RA)
    # Accounting, CoA, Disconnect: computed request authenticators.
    acct = packet(4, 0x40, bytes(16), [attr(40, (1).to_bytes(4, "big")), attr(1, b"alice"),
                                       attr(44, b"sess-0001"), attr(8, bytes([10, 8, 0, 2])), MA])
    seeds["gen-accounting-request"] = md5_auth(fill_ma(acct, bytes(16)), bytes(16))
    coa = packet(43, 0x41, bytes(16), [attr(1, b"alice"), attr(44, b"sess-0001"), attr(27, (600).to_bytes(4, "big")), MA])
    seeds["gen-coa-request"] = md5_auth(fill_ma(coa, bytes(16)), bytes(16))
    dis = packet(40, 0x42, bytes(16), [attr(1, b"alice"), attr(44, b"sess-0001")])
    seeds["gen-disconnect-request"] = md5_auth(dis, bytes(16))
    # RFC 6929 extended and long-extended attributes (with More flag), carried opaque.
    ext = packet(2, 0x34, bytes(16), [MA, attr(241, b"\x01abc"), attr(245, b"\x01\x80" + b"L" * 200),
                                      attr(245, b"\x01\x00" + b"l" * 20), attr(246, b"\x05\x00\x00\x00\x01\x37\x01z")])
    seeds["gen-accept-extended"] = md5_auth(fill_ma(ext, RA), RA)
    # Status-Server on the accounting port (RFC 5997 §6.2 shape).
    seeds["gen-status-server"] = fill_ma(packet(12, 0x35, RA, [MA, attr(4, bytes([127, 0, 0, 1]))]), RA)
    # A CHAP request and one carrying only State (RD Gateway style, no password).
    seeds["gen-chap-request"] = packet(1, 0x36, RA, [attr(1, b"carol"), attr(3, b"\x07" + bytes(range(16))),
                                                      attr(60, bytes(range(16, 32))), attr(32, b"rdgw")])
    seeds["gen-state-only"] = fill_ma(packet(1, 0x37, RA, [MA, attr(1, b"dave"), attr(24, b"s" * 32),
                                                            attr(30, b"UserAuthType:PW")]), RA)
    return seeds


def os_urandom_fixed(n):
    """Deterministic "random" bytes, so the corpus is reproducible."""
    return hashlib.sha256(b"portvakt corpus").digest()[:n]


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, text in enumerate(RFC):
        with open(os.path.join(OUT, f"rfc-{i:02}"), "wb") as f:
            f.write(bytes.fromhex(text.replace(" ", "")))
    for name, raw in generated().items():
        assert len(raw) <= 4096
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(raw)


if __name__ == "__main__":
    main()
