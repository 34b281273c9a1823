#!/usr/bin/env python3
"""Known-answer values for src/radius/tests/, computed independently of our Rust code.

Only Python's hashlib and hmac are used, written straight from the RFC text:
RFC 2865 §3 (Response Authenticator), RFC 2866 §3 (Accounting-Request authenticator),
RFC 5176 §2.3 (CoA/Disconnect), RFC 3579 §3.2 (Message-Authenticator), RFC 2868 §3.5
(Tunnel-Password), RFC 2548 §2.4.2-3 (MS-MPPE-Send/Recv-Key). Run `python3 kat.py`; the
hex it prints is pasted into the tests.
"""
import hashlib
import hmac

SECRET = b"xyzzy5461"
RA = bytes(range(16))  # a fixed Request Authenticator 00 01 .. 0f


def salted(plain, secret, ra, salt):
    """RFC 2868 §3.5: salt || E(len || plain || pad), b1 = MD5(S + R + A), bi = MD5(S + c(i-1))."""
    data = bytes([len(plain)]) + plain
    data += bytes(-len(data) % 16)
    out, prev = b"", ra + salt
    for i in range(0, len(data), 16):
        b = hashlib.md5(secret + prev).digest()
        c = bytes(x ^ y for x, y in zip(data[i:i + 16], b))
        out += c
        prev = c
    return salt + out


def attr(typ, value):
    return bytes([typ, len(value) + 2]) + value


def packet(code, ident, auth, attrs):
    body = b"".join(attrs)
    return bytes([code, ident]) + (20 + len(body)).to_bytes(2, "big") + auth + body


def with_ma(pkt, header_auth, secret):
    """Fills the (first) Message-Authenticator, computed with header_auth in the header."""
    at = pkt.index(bytes([80, 18]), 20) + 2
    zeroed = pkt[:4] + header_auth + pkt[20:at] + bytes(16) + pkt[at + 16:]
    ma = hmac.new(secret, zeroed, hashlib.md5).digest()
    return pkt[:at] + ma + pkt[at + 16:]


def md5_auth(pkt, header_auth, secret):
    auth = hashlib.md5(pkt[:4] + header_auth + pkt[20:] + secret).digest()
    return pkt[:4] + auth + pkt[20:]


def main():
    tp = bytes([0x01]) + salted(b"hunter2", SECRET, RA, b"\x81\x23")
    print("tunnel_password tag 1 'hunter2' salt 8123:", tp.hex())
    key = bytes(range(1, 33))
    mppe = salted(key, SECRET, RA, b"\x84\x56")
    print("mppe recv key 01..20 salt 8456:", mppe.hex())

    # Access-Accept answering a request with authenticator RA: MA first, then Reply-Message.
    acc = packet(2, 0x2A, bytes(16), [attr(80, bytes(16)), attr(18, b"ok")])
    acc = md5_auth(with_ma(acc, RA, SECRET), RA, SECRET)
    print("accept:", acc.hex())

    # Access-Request with MA; the header authenticator is RA itself.
    req = packet(1, 7, RA, [attr(1, b"nemo"), attr(80, bytes(16))])
    print("access-request:", with_ma(req, RA, SECRET).hex())

    # Accounting-Request: MA over 16 zero octets in the header, then the authenticator.
    acct = packet(4, 5, bytes(16), [attr(40, (1).to_bytes(4, "big")), attr(1, b"nemo"),
                                    attr(44, b"abc"), attr(80, bytes(16))])
    acct = md5_auth(with_ma(acct, bytes(16), SECRET), bytes(16), SECRET)
    print("accounting-request:", acct.hex())

    # CoA-Request with MA and Disconnect-Request without.
    coa = packet(43, 9, bytes(16), [attr(1, b"nemo"), attr(80, bytes(16))])
    coa = md5_auth(with_ma(coa, bytes(16), SECRET), bytes(16), SECRET)
    print("coa-request:", coa.hex())
    dis = md5_auth(packet(40, 10, bytes(16), [attr(1, b"nemo")]), bytes(16), SECRET)
    print("disconnect-request:", dis.hex())
    # CoA-ACK answering the CoA-Request above (Response Authenticator over its authenticator).
    ack = md5_auth(packet(44, 9, bytes(16), []), coa[4:20], SECRET)
    print("coa-ack:", ack.hex())


if __name__ == "__main__":
    main()
