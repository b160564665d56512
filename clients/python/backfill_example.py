"""Drives a backfill through the generated client (tidemark_client): create
it, watch it to its end, list its failed windows.

    PYTHONPATH=clients/python/generated python clients/python/backfill_example.py \
        URL TOKEN WORKFLOW START END

Prints one JSON object per event, the last one {"failed_windows": [...]}.
tests/tests/suite/pyclient.rs runs it against a real daemon.
"""

import json
import sys
import time

from tidemark_client import AuthenticatedClient
from tidemark_client.api.backfills import create_backfill, get_backfill, list_backfill_windows
from tidemark_client.models import (
    BackfillRequest, BackfillStatus, ErrorBody, Rerun, WindowList, WindowState,
)
from tidemark_client.types import UNSET


def check(answer, want):
    """The client returns the documented body of any status: an error is an ErrorBody."""
    if isinstance(answer, ErrorBody):
        sys.exit(f"API error {answer.error.code}: {answer.error.message}")
    if not isinstance(answer, want):
        sys.exit(f"unexpected answer {answer!r}")
    return answer


def main(url, token, workflow, start, end):
    with AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True) as client:
        request = BackfillRequest(workflow=workflow, start=start, end=end, rerun=Rerun.ALL)
        created = check(create_backfill.sync(client=client, body=request), BackfillStatus)
        backfill_id = created.backfill.id
        print(json.dumps({"created": backfill_id, "state": created.backfill.state.value}), flush=True)

        deadline = time.monotonic() + 120
        while True:
            status = check(get_backfill.sync(backfill_id, client=client), BackfillStatus)
            if status.backfill.ended_ms is not None:
                break
            if time.monotonic() > deadline:
                sys.exit(f"backfill {backfill_id} did not end: {status.to_dict()}")
            time.sleep(0.2)
        p = status.progress
        print(json.dumps({"ended": status.backfill.state.value, "done": p.done,
                          "succeeded": p.succeeded, "failed": p.failed}), flush=True)

        failed, after_workflow, after = [], UNSET, UNSET
        while True:
            page = check(list_backfill_windows.sync(
                backfill_id, client=client, state=WindowState.FAILED, limit=2,
                after_workflow=after_workflow, after=after), WindowList)
            failed += [{"workflow": w.workflow, "window_start_ms": w.window_start_ms,
                        "run_id": w.run_id, "reason": w.reason} for w in page.windows]
            if page.next_ is None:
                break
            after_workflow, after = page.next_.after_workflow, page.next_.after
        print(json.dumps({"failed_windows": failed}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
