"""One CoAP CON POST /ps/<topic> over DTLS-PSK with aiocoap and DTLSSocket (tinydtls), for
tests/dtls_coap.rs: tinydtls is the DTLS stack of many constrained devices.

usage: aiocoap_psk.py HOST PORT IDENTITY KEY TOPIC PAYLOAD

Prints "code=2.04" (or "error=<why>"); exits 0 either way once it has an answer.
"""
import asyncio
import sys

import aiocoap


async def main():
    host, port, identity, key, topic, payload = sys.argv[1:7]
    ctx = await aiocoap.Context.create_client_context()
    ctx.client_credentials.load_from_dict(
        {
            f"coaps://{host}:{port}/*": {
                "dtls": {
                    "psk": key.encode(),
                    "client-identity": identity.encode(),
                }
            }
        }
    )
    req = aiocoap.Message(
        code=aiocoap.POST, uri=f"coaps://{host}:{port}/ps/{topic}", payload=payload.encode()
    )
    try:
        resp = await asyncio.wait_for(ctx.request(req).response, 15)
        print(f"code={resp.code.dotted}")
    except Exception as e:  # a refused handshake is an answer too
        print(f"error={type(e).__name__}: {e}")
    finally:
        await ctx.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
