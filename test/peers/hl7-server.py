#!/usr/bin/python3
"""An HL7 v2 receiver over MLLP (a RIS stand-in) for radgate's tests.

Debian's python3-hl7 (hl7.mllp.start_hl7_server) parses each message; the
server appends one JSON line per message to --log (type, control ID, order
control, priority, accession, patient, study UID, notes, OBX values),
answers with --ack (AA by default; AE or AR to test the sender's retry and
dead-lettering), and prints "listening HOST:PORT" once it listens.

    /usr/bin/python3 test/peers/hl7-server.py --port 2575 --log msgs.jsonl
"""
import argparse
import asyncio
import json
import sys

import hl7
import hl7.mllp


def comp(seg, n, c):
    """Component c (1-based) of field n's first repetition."""
    try:
        return str(seg.extract_field(1, n, 1, c))
    except Exception:
        return ""


def first(msg, name):
    try:
        return msg.segment(name)
    except KeyError:
        return None


def summarize(msg):
    msh = msg.segment("MSH")
    out = {
        "type": "^".join(x for x in [comp(msh, 9, 1), comp(msh, 9, 2)] if x),
        "control_id": str(msh(10)),
        "version": str(msh(12)),
        "charset": str(msh(18)) if len(msh) > 18 else "",
    }
    pid = first(msg, "PID")
    if pid is not None:
        out["patient_id"] = msg.unescape(comp(pid, 3, 1))
        out["patient_family"] = msg.unescape(comp(pid, 5, 1))
        out["patient_given"] = msg.unescape(comp(pid, 5, 2))
    orc = first(msg, "ORC")
    if orc is not None:
        out["order_control"] = str(orc(1))
        out["accession"] = msg.unescape(comp(orc, 3, 1))
    tq1 = first(msg, "TQ1")
    if tq1 is not None:
        out["priority"] = comp(tq1, 9, 1)
    obr = first(msg, "OBR")
    if obr is not None:
        out["result_status"] = str(obr(25)) if len(obr) > 25 else ""
    ipc = first(msg, "IPC")
    if ipc is not None:
        out["study_uid"] = comp(ipc, 3, 1)
    zds = first(msg, "ZDS")
    if zds is not None:
        out["study_uid"] = comp(zds, 1, 1)
    out["notes"] = [msg.unescape(str(s(3))) for s in msg if str(s[0]) == "NTE"]
    obx = []
    for s in msg:
        if str(s[0]) != "OBX":
            continue
        obx.append({
            "type": str(s(2)),
            "code": msg.unescape(comp(s, 3, 1)),
            "meaning": msg.unescape(comp(s, 3, 2)),
            "scheme": comp(s, 3, 3),
            "value": str(s(5)),
            "flag": str(s(8)),
            "status": str(s(11)),
        })
    out["obx"] = obx
    return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ack", default="AA", choices=["AA", "AE", "AR", "CA", "CE", "CR"])
    args = ap.parse_args()
    logf = open(args.log, "a", encoding="utf-8")

    async def client(reader, writer):
        try:
            while not reader.at_eof():
                msg = await reader.readmessage()
                rec = summarize(msg)
                rec["ack"] = args.ack
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                print("received", rec["type"], rec["control_id"], flush=True)
                writer.writemessage(msg.create_ack(args.ack))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        except Exception as e:  # a broken message: log it, drop the connection
            print("error:", repr(e), file=sys.stderr, flush=True)
        finally:
            writer.close()

    server = await hl7.mllp.start_hl7_server(client, args.host, args.port, encoding="utf-8")
    print(f"listening {args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
