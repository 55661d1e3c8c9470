"""One CoAP CON POST /ps/<topic> over DTLS with python-mbedtls (mbed TLS 2.28), for
tests/dtls_coap.rs: a third DTLS stack besides libcoap's OpenSSL and GnuTLS builds.

usage: mbedtls_coap.py HOST PORT psk IDENTITY KEY TOPIC PAYLOAD
       mbedtls_coap.py HOST PORT cert CAFILE TOPIC PAYLOAD

Prints the response code as "code=2.04" (or "error=<why>") and exits 0 when it got one.
"""
import random
import socket
import struct
import sys

from mbedtls import tls, x509


def block(op, *args):
    while True:
        try:
            return op(*args)
        except (tls.WantReadError, tls.WantWriteError):
            continue


def coap_post(topic, payload, mid, token):
    # Version 1, CON, token length; code 0.02 POST; message id.
    head = struct.pack("!BBH", 0x40 | len(token), 0x02, mid) + token
    opts = b""
    last = 0
    for seg in ["ps"] + topic.split("/"):
        data = seg.encode()
        delta = 11 - last  # Uri-Path
        last = 11
        if len(data) < 13:
            opts += bytes([(delta << 4) | len(data)]) + data
        else:
            opts += bytes([(delta << 4) | 13, len(data) - 13]) + data
    return head + opts + b"\xff" + payload.encode()


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "psk":
        identity, key, topic, payload = sys.argv[4:8]
        conf = tls.DTLSConfiguration(
            pre_shared_key=(identity, key.encode()),
            ciphers=["TLS-PSK-WITH-AES-128-CCM-8"],
            validate_certificates=False,
        )
    else:
        cafile, topic, payload = sys.argv[4:7]
        store = tls.TrustStore()
        with open(cafile, "rb") as f:
            store.add(x509.CRT.from_PEM(f.read().decode()))
        conf = tls.DTLSConfiguration(
            trust_store=store,
            ciphers=["TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8"],
            validate_certificates=True,
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    cli = tls.ClientContext(conf).wrap_socket(sock, server_hostname="localhost" if mode == "cert" else None)
    cli.connect((host, port))
    try:
        block(cli.do_handshake)
    except Exception as e:  # a refused handshake is an answer too
        print(f"error={e}")
        return 0
    mid = random.randrange(1, 65535)
    token = random.randbytes(4)
    block(cli.send, coap_post(topic, payload, mid, token))
    while True:
        data = block(cli.recv, 2048)
        if len(data) >= 4 and struct.unpack("!H", data[2:4])[0] == mid:
            code = data[1]
            print(f"code={code >> 5}.{code & 0x1F:02d}")
            return 0


if __name__ == "__main__":
    sys.exit(main())
