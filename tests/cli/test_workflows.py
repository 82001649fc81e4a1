"""`taskjet workflow list|show|cancel` against a workflow real workers ran."""

from __future__ import annotations

import json

from src.engine.broker import JetStreamBroker
from src.tasks.broker import chain
from tests.cli.conftest import Taskjet
from tests.conftest import StartWorker
from tests.support import tasks


async def test_show_and_cancel_a_workflow(
    broker: JetStreamBroker, start_worker: StartWorker, taskjet: Taskjet
) -> None:
    await start_worker()
    handle = await chain(tasks.add.s(2, 3), tasks.add.s(4)).kiq()
    assert (await handle.wait_result(timeout=60)).return_value == 9

    code, out = await taskjet("workflow", "show", handle.workflow_id)
    assert code == 0
    assert f"workflow {handle.workflow_id} (chain): SUCCESS" in out
    assert "1-add" in out
    assert "2-add" in out
    code, out = await taskjet("workflow", "show", handle.workflow_id, "--json")
    body = json.loads(out.strip().splitlines()[-1])
    assert [s["state"] for s in body["steps"]] == ["SUCCESS", "SUCCESS"]
    code, out = await taskjet("workflow", "show", "nope")
    assert code == 2
    assert "no workflow 'nope'" in out
    code, out = await taskjet("workflow", "cancel", handle.workflow_id)
    assert code == 0
    assert f"workflow {handle.workflow_id} (chain): SUCCESS" in out, "an ended one is left as is"
    code, out = await taskjet("workflow", "list")
    assert code == 0
    assert handle.workflow_id in out
    assert "chain" in out
    assert "2/2" in out
    code, out = await taskjet("workflow", "list", "--state", "FAILURE", "--json")
    assert (code, out.strip()) == (0, "")
    code, out = await taskjet("workflow", "list", "--state", "SUCCESS", "--json")
    assert json.loads(out.strip().splitlines()[-1])["workflow_id"] == handle.workflow_id
    code, out = await taskjet("workflow", "list", "--state", "DONE")
    assert code == 2
    assert "no workflow state 'DONE'" in out
