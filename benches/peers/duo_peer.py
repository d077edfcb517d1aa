"""The peer: "Associate Phone to a User" for every row of a CSV file, done with Duo's official
Python client (`duo_client`), as a help desk script would, with a thread pool.

Per row it sends what the catalog flow `duo.admin.associate_phone` sends, in the same order:

1. GET  /admin/v1/users?username=…          (`get_users_by_name`)
2. GET  /admin/v1/phones?number=…           (`get_phones_by_number`)
3. POST /admin/v1/phones                    (`add_phone`, only when Duo has no such number;
                                             a 40003 answer means another run created it:
                                             look it up again, as the flow's `raced` does)
4. POST /admin/v1/users/{user_id}/phones    (`add_user_phone`, only when the phone is not
                                             the user's yet)

The client has no way to send 1 and 2 at once: each call is a blocking request on a connection
of its own (the client opens and closes one per request), so the calls of a row run one after
another; rows run `--concurrency` at once, one client per thread.

Run by `run.py` with the virtual environment's Python; prints one JSON line: rows, failures,
and the loop's own wall and CPU time (the process's totals are measured by the driver).
"""

import argparse
import concurrent.futures
import csv
import json
import resource
import sys
import threading
import time

import duo_client


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ikey", required=True)
    p.add_argument("--skey-file", required=True)
    p.add_argument("--concurrency", type=int, required=True)
    a = p.parse_args()
    with open(a.skey_file) as f:
        skey = f.read().strip()
    with open(a.rows, newline="") as f:
        rows = list(csv.DictReader(f))

    local = threading.local()

    def admin():
        client = getattr(local, "admin", None)
        if client is None:
            # `ca_certs="HTTP"` is the client's own switch for plain HTTP (the simulator listens
            # on loopback without TLS); everything else is the client's default: v5 signatures.
            client = duo_client.Admin(ikey=a.ikey, skey=skey, host=a.host, port=a.port, ca_certs="HTTP")
            local.admin = client
        return client

    def associate(row):
        api = admin()
        users = api.get_users_by_name(row["username"])
        phones = api.get_phones_by_number(row["number"])
        if len(users) != 1:
            raise RuntimeError("user_not_found: " + row["username"])
        user_id = users[0]["user_id"]
        if phones:
            phone = phones[0]
        else:
            try:
                phone = api.add_phone(
                    number=row["number"], type=row["type"], platform=row["platform"], name=row["name"]
                )
            except RuntimeError as e:
                if "40003" not in str(e):
                    raise
                phone = api.get_phones_by_number(row["number"])[0]
        linked = any(u["user_id"] == user_id for u in phone.get("users", []))
        if not linked:
            api.add_user_phone(user_id, phone["phone_id"])
        return "already_associated" if linked else "associated"

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    failed = 0
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.concurrency) as pool:
        for fut in concurrent.futures.as_completed([pool.submit(associate, r) for r in rows]):
            try:
                fut.result()
            except Exception as e:  # a failed row is counted, as `--each` counts it
                failed += 1
                if len(errors) < 5:
                    errors.append(str(e))
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    json.dump({"rows": len(rows), "failed": failed, "errors": errors, "loop_wall_s": wall, "loop_cpu_s": cpu}, sys.stdout)
    print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
